"""vlm with StackFlow's image-then-text sequence (TCP and UART), classify and ocr, on real photos."""

from __future__ import annotations

import base64
import os
import pty
import tty

import pytest
from visionkit import b64, photo, send_raw

from support import Server, examples, levenshtein

pytestmark = pytest.mark.slow


# skimage's page.png, the lines that are whole in the photo (the last one is cut off at the bottom)
PAGE = [
    "Region-based segmentation",
    "Let us first determine markers of the coins and the",
    "background. These markers are pixels that we can label",
    "unambiguously as either object or background. Here,",
    "the markers are found at the two extreme parts of the",
    "histogram of grey values:",
]


def test_transcript_vlm_image_then_text(fresh_server):
    """vlm_image.requests.jsonl: three images stored silently (base64, stream chunks, RAW), then a
    question about the last one; then `reset`."""
    setup, img, chunk0, chunk1, raw, text = examples("vlm_image.requests.jsonl")
    c = fresh_server.client(timeout=180)
    assert (
        c.request(
            setup["work_id"], "setup", setup["object"], setup["data"], request_id=setup["request_id"], timeout=180
        )["work_id"]
        == "vlm.1000"
    )
    c.send({**img, "data": b64("coffee.png")})
    kite = b64("kite.jpg")
    c.send({**chunk0, "data": {**chunk0["data"], "delta": kite[:5001]}})
    c.send({**chunk1, "data": {**chunk1["data"], "delta": kite[5001:]}})
    header = {k: v for k, v in raw.items() if k != "RAW"}
    send_raw(c, header, photo("dog.jpg").read_bytes())  # the RAW frame: the image the question is about
    c.send(text)
    answer = list(c.outputs("vlm.1000", "vlm_inference"))
    # nothing came back for the three images: every output answers the text inference
    assert all(m["request_id"] == "vlm_inference" and m["object"] == "vlm.utf-8.stream" for m in answer)
    said = "".join(m["data"]["delta"] for m in answer)
    assert "dog" in said.lower(), said
    info = c.request("vlm.1000", "taskinfo")["data"]
    assert info["resolved_model"] == "grounded-vlm" and "NOT a vision-language model" in info["unit"]["backend"]
    assert any(o["class"] == "dog" for o in info["unit"]["last_facts"]["objects"])
    assert c.ask("vlm.1000", "reset") == "Context has been reset."
    assert "no image" in c.ask("vlm.1000", "What do you see?").lower()


def test_vlm_over_uart(tmp_path):
    """The same flow from a microcontroller on the UART (a pseudo-terminal here)."""
    from test_uart import Serial  # the UART tests' serial peer

    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    server = Server(tmp_path, config={"uart": os.ttyname(slave), "http_port": None, "grpc_port": None})
    try:
        port = Serial(master)
        assert port.recv()["error"]["message"] == "reset over"
        port.send(
            {
                "request_id": "vlm_setup",
                "work_id": "vlm",
                "action": "setup",
                "object": "vlm.setup",
                "data": {
                    "model": "internvl2.5-1B-364-ax630c",
                    "response_format": "vlm.utf-8",
                    "enoutput": True,
                    "input": "vlm.utf-8",
                },
            }
        )
        assert port.recv(180)["work_id"] == "vlm.1000"
        port.send(
            {
                "request_id": "img",
                "work_id": "vlm.1000",
                "action": "inference",
                "object": "vlm.jpeg.base64",
                "data": b64("giraffe.jpg"),
            }
        )
        port.send(
            {
                "request_id": "q",
                "work_id": "vlm.1000",
                "action": "inference",
                "object": "vlm.utf-8",
                "data": "Which animals are there?",
            }
        )
        answer = port.recv(180)
        assert answer["request_id"] == "q" and answer["object"] == "vlm.utf-8"
        assert "giraffe" in answer["data"].lower(), answer
    finally:
        server.stop()
        os.close(master)
        os.close(slave)


def test_classify_puts_espresso_first_and_ocr_reads_the_page(vision_server):
    c = vision_server.client(timeout=180)
    cls = c.setup(
        "classify", {"model": "efficientnet-lite0", "response_format": "classify.json", "input": "classify.jpeg.base64"}
    )
    c.infer(cls, b64("coffee.png"), object="classify.jpeg.base64", request_id="coffee")
    top = c.next_message(lambda m: m["work_id"] == cls)["data"]
    assert top[0]["class"] == "espresso" and top[0]["confidence"] > 0.5, top
    assert len(top) == 5 and top == sorted(top, key=lambda t: -t["confidence"])
    ocr = c.setup("ocr", {"model": "ppocr-v5", "response_format": "ocr.json", "input": "ocr.jpeg.base64"})
    c.infer(ocr, b64("page.png"), object="ocr.jpeg.base64", request_id="page")
    result = c.next_message(lambda m: m["work_id"] == ocr, timeout=180)["data"]
    lines = [line["text"] for line in result["lines"]]
    errors = sum(min(levenshtein(truth, got) for got in lines) for truth in PAGE)
    cer = errors / sum(len(t) for t in PAGE)
    assert cer <= 0.05, (cer, lines)
    first = result["lines"][0]
    assert first["text"] == PAGE[0] and len(first["box"]) == 4 and 0.5 < first["confidence"] <= 1
    assert result["text"].startswith(PAGE[0])
    c.infer(ocr, base64.b64encode(b"GIF89a not really").decode(), object="ocr.jpeg.base64", request_id="bad")
    assert c.next_message(lambda m: m["work_id"] == "ocr")["error"]["code"] == -11
    c.exit(cls)
    c.exit(ocr)


def test_a_real_vlm_descriptor_is_used_and_checked(tmp_path, monkeypatch):
    """A user's GGUF + mmproj descriptor selects the llama.cpp backend; missing files fail setup clearly."""
    import json

    from emberflow.unit import UnitError
    from emberflow.unit.local import LocalTask
    from emberflow.units.vlm import VLMUnit

    (tmp_path / "my-vlm.json").write_text(
        json.dumps(
            {
                "mode": "my-vlm",
                "type": "vlm",
                "capabilities": ["Image_Understanding"],
                "mode_param": {
                    "backend": "llama",
                    "model_path": str(tmp_path / "missing.gguf"),
                    "mmproj_path": str(tmp_path / "missing-mmproj.gguf"),
                },
            }
        )
    )
    monkeypatch.setenv("EMBERFLOW_MODELS_DIR", str(tmp_path))
    with pytest.raises(UnitError) as e:
        LocalTask(VLMUnit, {"model": "my-vlm"})
    assert e.value.code == -5 and "mmproj_path" in (e.value.detail or "")
