"""The yolo unit over StackFlow TCP, on real photos: the transcript's sequence, RAW frames, stream
chunks, every output format, and bad input that must not break the unit."""

from __future__ import annotations

import base64

import pytest
from visionkit import DOG_JPG, b64, best, grey_jpeg, iou, photo, send_raw

from emberflow.client import ServerError
from support import examples

pytestmark = pytest.mark.slow


def check_dog(found: list[dict]) -> None:
    """darknet's dog.jpg: a dog, a bicycle and a car/truck, each where it is in the photo."""
    for cls, where in (
        ({"dog"}, DOG_JPG["dog"]),
        ({"bicycle"}, DOG_JPG["bicycle"]),
        ({"car", "truck"}, DOG_JPG["vehicle"]),
    ):
        hit = best(found, cls, where)
        assert hit is not None, f"no {cls} in {found}"
        assert iou(hit["bbox"], where) > 0.5, (hit, where)
        assert 0 < hit["confidence"] <= 1


def test_transcript_yolo_jpeg_user_input(fresh_server):
    """yolo_jpeg_user_input.transcript.jsonl with the real photo in place of <base64 JPEG>."""
    steps = [s for s in examples("yolo_jpeg_user_input.transcript.jsonl")]
    c = fresh_server.client(timeout=120)
    setup = steps[0]["msg"]
    got = c.request(
        setup["work_id"], setup["action"], setup["object"], setup["data"], request_id=setup["request_id"], timeout=120
    )
    want = steps[1]["msg"]
    assert (
        (got["work_id"], got["request_id"], got["data"], got["object"])
        == (want["work_id"], want["request_id"], want["data"], want["object"])
        == ("yolo.1000", "yolo_setup", "None", "None")
    )
    inf = steps[2]["msg"]
    c.send({**inf, "data": b64("dog.jpg")})
    reply = c.next_message(lambda m: m["work_id"] == "yolo.1000")
    assert reply["object"] == steps[3]["msg"]["object"] == "yolo.box"
    assert reply["request_id"] == "y1" and reply["error"]["code"] == 0
    assert isinstance(reply["data"], list)
    for d in reply["data"]:
        assert set(d) == {"class", "confidence", "bbox"} and len(d["bbox"]) == 4
        assert all(round(v, 2) == v for v in d["bbox"])  # two decimals, as StackFlow formats them
    check_dog(reply["data"])
    modes = {m["mode"]: m for m in c.request("sys", "lsmode")["data"]}  # what StackFlow clients list
    assert modes["yolo11n"]["alias_of"] == "nanodet-m" and modes["nanodet-m"]["type"] == "yolo"
    assert modes["internvl2.5-1B-364-ax630c"]["type"] == "vlm"  # the OpenAI plugin lists vlm models by type


def test_raw_frames_stream_chunks_and_formats(vision_server):
    c = vision_server.client(timeout=120)
    box = c.setup(
        "yolo", {"model": "yolo11n", "response_format": "yolo.box", "input": "yolo.jpeg.base64", "enoutput": True}
    )
    # the Arduino library's RAW upload: {"RAW":N,...,"object":"cv.jpeg.base64"} + N JPEG bytes
    send_raw(
        c,
        {"request_id": "yolo_inference", "work_id": box, "action": "inference", "object": "cv.jpeg.base64"},
        photo("dog.jpg").read_bytes(),
    )
    raw = c.next_message(lambda m: m["work_id"] == box)
    assert raw["request_id"] == "yolo_inference"
    check_dog(raw["data"])
    # nothing there: an empty list, still one answer per image
    c.infer(box, base64.b64encode(grey_jpeg()).decode(), object="yolo.jpeg.base64", request_id="grey")
    assert c.next_message(lambda m: m["work_id"] == box)["data"] == []

    stream = c.setup(
        "yolo",
        {"model": "yolo11n", "response_format": "yolo.boxV2.stream", "input": "yolo.jpeg.base64", "enoutput": True},
    )
    text = b64("dog.jpg")
    cut = [0, len(text) // 3 + 1, 2 * len(text) // 3 + 2, len(text)]  # split off base64 quanta on purpose
    for i in range(3):
        c.send(
            {
                "request_id": "chunks",
                "work_id": stream,
                "action": "inference",
                "object": "yolo.jpeg.stream.base64",
                "data": {"delta": text[cut[i] : cut[i + 1]], "index": i, "finish": i == 2},
            }
        )
    chunks = list(c.outputs(stream, "chunks"))
    assert chunks[-1]["data"] == {"delta": "", "finish": True, "index": len(chunks) - 1}
    dets = [m["data"]["delta"] for m in chunks[:-1]]
    assert [m["data"]["index"] for m in chunks] == list(range(len(chunks)))
    as_corners = [
        {**d, "bbox": [d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]}
        for d in dets
    ]  # boxV2 is x, y, w, h
    check_dog(as_corners)
    assert c.request(stream, "taskinfo")["data"]["unit"]["images"] == 1
    c.exit(box)
    c.exit(stream)


def test_pose_and_faces(vision_server):
    c = vision_server.client(timeout=120)
    pose = c.setup("yolo", {"model": "yolo11n-pose", "response_format": "yolo.box", "input": "yolo.jpeg.base64"})
    c.infer(pose, b64("person.jpg"), object="yolo.jpeg.base64", request_id="p")
    people = c.next_message(lambda m: m["work_id"] == pose)["data"]
    # person.jpg: one man standing in the middle (x 190-275, y 95-375), with his dog and horse
    man = best(people, {"person"}, (190, 95, 275, 375))
    assert man is not None and iou(man["bbox"], (190, 95, 275, 375)) > 0.5, people
    kps = man["kps"]
    assert len(kps) == 17 * 3
    nose_x, nose_y = kps[0], kps[1]
    assert 190 < nose_x < 275 and 95 < nose_y < 160  # the nose is at the top of his box
    faces = c.setup("yolo", {"model": "blazeface", "response_format": "yolo.box", "input": "yolo.jpeg.base64"})
    c.infer(faces, b64("astronaut.png"), object="yolo.jpeg.base64", request_id="f")
    found = c.next_message(lambda m: m["work_id"] == faces)["data"]
    assert len(found) == 1 and found[0]["class"] == "face"
    assert iou(found[0]["bbox"], (165, 70, 280, 185)) > 0.5, found  # Eileen Collins' face
    c.exit(pose)
    c.exit(faces)


def test_bad_input_gets_stackflow_errors_and_the_unit_keeps_serving(vision_server):
    import io

    from PIL import Image

    c = vision_server.client(timeout=120)
    yolo = c.setup("yolo", {"model": "yolo11n", "response_format": "yolo.box", "input": "yolo.jpeg.base64"})
    dog = photo("dog.jpg").read_bytes()
    big = io.BytesIO()
    Image.new("RGB", (8000, 5000), (90, 90, 90)).save(big, "JPEG", quality=10)  # 40 MP, only ~100 KB
    cases = [
        ("%%% not base64 %%%", "yolo.jpeg.base64", -23),
        ({"some": "object"}, "yolo.jpeg.base64", -23),  # data must be a base64 string
        ("", "yolo.jpeg.base64", -24),
        (base64.b64encode(b"this is plain text, not a JPEG").decode(), "yolo.jpeg.base64", -11),
        (base64.b64encode(dog[: len(dog) // 2]).decode(), "yolo.jpeg.base64", -11),  # truncated JPEG
        (base64.b64encode(big.getvalue()).decode(), "yolo.jpeg.base64", -22),
        ({"delta": "abc", "index": 3, "finish": True}, "yolo.jpeg.stream.base64", -25),
        ([1, 2, 3], "yolo.jpeg", -2),  # JSON where an image belongs
    ]
    for data, obj, code in cases:
        c.send({"request_id": "bad", "work_id": yolo, "action": "inference", "object": obj, "data": data})
        err = c.next_message(lambda m: m["work_id"] in (yolo, "yolo") and m["error"]["code"] != 0)
        assert err["error"]["code"] == code, (data if len(str(data)) < 80 else obj, err)
        assert err["work_id"] == "yolo"  # StackFlow reports data errors with the bare unit name
    c.infer(yolo, b64("dog.jpg"), object="yolo.jpeg.base64", request_id="ok")
    check_dog(c.next_message(lambda m: m["work_id"] == yolo and m["request_id"] == "ok")["data"])
    with pytest.raises(ServerError) as e:
        c.setup("yolo", {"model": "yolo11n-seg", "response_format": "yolo.box"})
    assert e.value.code == -5 and "nanodet-m" in str(e.value)  # says what exists
    c.exit(yolo)
