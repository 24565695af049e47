"""Vision over HTTP: OpenAI image parts through the official SDK (to the vlm unit, streaming too),
the detector on unit REST, and its ONNX file on KServe v2 for tensor clients."""

from __future__ import annotations

import base64
import json
import urllib.request

import numpy as np
import pytest
from visionkit import DOG_JPG, b64, best, iou, photo

from emberflow.models.catalogue import Catalogue
from support import Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(vision_server):
    from openai import OpenAI

    return OpenAI(base_url=f"http://127.0.0.1:{vision_server.http_port}/v1", api_key="none", max_retries=0, timeout=300)


def image_message(question: str, name: str) -> list[dict]:
    mime = "image/png" if name.endswith(".png") else "image/jpeg"
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": question},
                {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{b64(name)}"}},
            ],
        }
    ]


def test_openai_image_part_gets_an_answer_naming_an_object(client):
    # an LLM named: the default vlm answers, grounded, with that LLM wording it
    r = client.chat.completions.create(
        model="smollm2-135m-instruct", max_tokens=40, messages=image_message("What is in this picture?", "dog.jpg")
    )
    answer = r.choices[0].message.content
    assert "dog" in answer.lower() and r.choices[0].finish_reason in ("stop", "length"), answer
    assert r.usage.completion_tokens > 0
    # a StackFlow VLM name, streamed
    pieces = list(
        client.chat.completions.create(
            model="internvl2.5-1B-364-ax630c",
            stream=True,
            max_tokens=40,
            messages=image_message("Describe the image.", "giraffe.jpg"),
        )
    )
    text = "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
    assert "giraffe" in text.lower(), text
    assert pieces[-1].choices[0].finish_reason in ("stop", "length")
    assert "grounded-vlm" in [m.id for m in client.models.list().data]


def test_openai_bad_images_are_400s(client):
    import openai

    for url, says in (
        ("data:image/jpeg;base64,!!!notbase64", "not valid base64"),
        ("https://example.invalid/x.jpg", "only data: URLs"),
        ("data:image/jpeg;base64," + base64.b64encode(b"plain text").decode(), "not an image"),
    ):
        msg = [
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}],
            }
        ]
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="grounded-vlm", messages=msg)
        assert says in e.value.body["message"], e.value.body


def test_detector_on_unit_rest(vision_server):
    body = json.dumps({"params": {"model": "yolo11n", "response_format": "yolo.box"}, "data": b64("dog.jpg")})
    req = urllib.request.Request(
        f"http://127.0.0.1:{vision_server.http_port}/units/yolo/infer",
        data=body.encode(),
        headers={"content-type": "application/json"},
    )
    reply = json.loads(urllib.request.urlopen(req, timeout=120).read())
    found = reply["outputs"][0]
    dog = best(found, {"dog"}, DOG_JPG["dog"])
    assert dog is not None and iou(dog["bbox"], DOG_JPG["dog"]) > 0.5, found


def test_detector_on_kserve_v2_for_tensor_clients(tmp_path):
    """The installed NanoDet ONNX in a model repository (a symlink: the existing KServe mechanism),
    inferred by tritonclient with the unit's own preprocessing; boxes decoded client-side."""
    import tritonclient.http as triton

    from emberflow.vision.detect import NanoDet

    onnx = Catalogue().weights_path(Catalogue().resolve("nanodet-m").descriptor)
    assert onnx is not None, "run `emberflow models install nanodet-m`"
    (tmp_path / "repo" / "nanodet-m" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "nanodet-m" / "1" / "model.onnx").symlink_to(onnx)
    server = Server(tmp_path, config={"model_repository": str(tmp_path / "repo"), "grpc_port": None})
    try:
        tc = triton.InferenceServerClient(f"127.0.0.1:{server.http_port}")
        assert tc.is_model_ready("nanodet-m")
        det = NanoDet(onnx)
        from emberflow.vision.image import decode

        x, lb = det.preprocess(decode(photo("dog.jpg").read_bytes()))
        inp = triton.InferInput("input_1", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        names = [o.name for o in det.engine.outputs]
        res = tc.infer("nanodet-m", [inp], outputs=[triton.InferRequestedOutput(n) for n in names])
        outs = [res.as_numpy(n) for n in names]
        local = det.run(x)
        for a, b in zip(outs, local):
            assert np.allclose(a, b, atol=1e-5)  # the same model computes the same thing over HTTP
        found = [d.stackflow() for d in det.postprocess(outs, lb, 0.3, 0.5)]
        assert best(found, {"dog"}, DOG_JPG["dog"]) is not None
    finally:
        server.stop()
