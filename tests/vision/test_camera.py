"""The camera unit on a video file (this machine has no camera), linked to yolo and vlm as
StackFlow's camera_yolo sequence links them, and its other sources and outputs."""

from __future__ import annotations

import base64
import urllib.request
from pathlib import Path

import pytest
from visionkit import DOG_JPG, b64, best, free_port, iou, photo, video

from emberflow.client import ServerError
from support import eventually, examples

pytestmark = pytest.mark.slow


def frames_of(c, work_id: str, count: int) -> list[list[dict]]:
    """`count` whole frames of a yolo.box.stream task: one list of detections per finish chunk."""
    out, current = [], []
    while len(out) < count:
        m = c.next_message(lambda m: m["work_id"] == work_id, timeout=120)
        assert m["error"]["code"] == 0, m
        assert m["request_id"] == "yolo_setup"  # outputs of a linked task carry the setup's request id
        if m["data"]["finish"]:
            out.append(current)
            current = []
        else:
            current.append(m["data"]["delta"])
    return out


def test_transcript_camera_yolo_on_a_video_file(fresh_server, tmp_path):
    """camera_yolo.requests.jsonl with a video file (dog.jpg then person.jpg, 30 fps) as the input."""
    clip = video(tmp_path / "clip.avi", ["dog.jpg", "person.jpg"], seconds_each=1.0)
    cam_req, yolo_req, list_req = examples("camera_yolo.requests.jsonl")
    c = fresh_server.client(timeout=120)
    cam = c.request(
        cam_req["work_id"],
        cam_req["action"],
        cam_req["object"],
        {**cam_req["data"], "input": str(clip)},
        request_id=cam_req["request_id"],
    )
    assert cam["work_id"] == "camera.1000" and cam["request_id"] == "camera_setup"
    yolo = c.request(
        yolo_req["work_id"],
        yolo_req["action"],
        yolo_req["object"],
        yolo_req["data"],
        request_id=yolo_req["request_id"],
        timeout=120,
    )
    assert yolo["work_id"] == "yolo.1001"
    seen = frames_of(c, "yolo.1001", 40)  # more than a second of video: both photos pass by
    scale = 320 / 768  # the 768x576 photo fitted into the 320x320 frame (letterboxed)
    pad_y = (320 - 576 * scale) / 2
    dog_box = [v * scale + (pad_y if i % 2 else 0) for i, v in enumerate(DOG_JPG["dog"])]
    dogs = [best(f, {"dog"}, dog_box) for f in seen]
    assert any(d is not None and iou(d["bbox"], dog_box) > 0.5 for d in dogs), seen
    assert any(any(d["class"] in ("horse", "cow") for d in f) for f in seen)  # person.jpg's horse
    info = c.request("yolo.1001", "taskinfo")["data"]
    assert info["inputs"] == ["camera.1000"]
    frames = info["unit"]["frames"]
    # every frame is accounted for: processed, dropped by the latest-only slot, or in flight (at most 2)
    assert frames["received"] == frames["processed"] + frames["dropped"] + frames["failed"] + frames["in_flight"]
    assert frames["in_flight"] <= 2 and frames["failed"] == 0
    assert frames["processed"] >= 40 and frames["latency_ms"]["samples"] >= 40
    cam_info = c.request("camera.1000", "taskinfo")["data"]["unit"]
    assert cam_info["frame_width"] == 320 and cam_info["published"] >= 40
    assert cam_info["captured"] == cam_info["published"] + cam_info["dropped"] + cam_info["waiting"]
    # list_camera: StackFlow sends it to the bare unit name, which needs a core change (unit-level
    # actions); on the task id the devices are answered (none on this machine), and taskinfo has them
    assert c.request("camera.1000", list_req["action"], request_id=list_req["request_id"])["error"]["code"] == 0
    assert cam_info["devices"] == []
    c.exit("yolo.1001")
    c.exit("camera.1000")


def test_camera_sources_outputs_and_errors(vision_server, tmp_path):
    c = vision_server.client(timeout=120)
    with pytest.raises(ServerError) as e:
        c.setup(
            "camera",
            {
                "response_format": "camera.raw",
                "input": "/dev/video7",
                "frame_width": 320,
                "frame_height": 240,
                "enoutput": False,
            },
        )
    assert e.value.code == -5 and "no camera" in str(e.value)
    with pytest.raises(ServerError) as e:
        c.setup("camera", {"response_format": "camera.raw", "input": str(tmp_path / "missing.mp4")})
    assert e.value.code == -5 and "does not exist" in str(e.value)
    # JPEG frames to the client, and the MJPEG preview
    clip = video(tmp_path / "clip.avi", ["kite.jpg"], seconds_each=0.5)
    port = free_port()
    cam = c.setup(
        "camera",
        {
            "response_format": "image.jpeg.base64",
            "input": str(clip),
            "frame_width": 320,
            "frame_height": 240,
            "enoutput": True,
            "enable_webstream": True,
            "webstream_port": port,
        },
    )
    msg = c.next_message(lambda m: m["work_id"] == cam and m["object"] == "image.jpeg.base64")
    jpeg = base64.b64decode(msg["data"])
    from emberflow.vision.image import decode

    assert decode(jpeg).shape == (240, 320, 3)
    snap = urllib.request.urlopen(f"http://127.0.0.1:{port}/snapshot.jpg", timeout=30).read()
    assert decode(snap).shape == (240, 320, 3)
    c.exit(cam)
    # frames pushed by a client, detected by a linked yolo
    cam = c.setup(
        "camera",
        {
            "response_format": "camera.raw",
            "input": "camera.jpeg.base64",
            "frame_width": 640,
            "frame_height": 480,
            "enoutput": False,
        },
    )
    yolo = c.setup("yolo", {"model": "yolo11n", "response_format": "yolo.box", "input": "yolo.jpeg.base64"})
    assert c.request(yolo, "link", "work_id", cam)["error"]["code"] == 0  # StackFlow's link, after setup
    c.infer(cam, b64("dog.jpg"), object="camera.jpeg.base64")
    found = c.next_message(lambda m: m["work_id"] == yolo)["data"]
    assert any(d["class"] == "dog" for d in found), found
    c.exit(yolo)
    c.exit(cam)


def test_vlm_answers_about_the_latest_camera_frame(vision_server, tmp_path):
    clip = video(tmp_path / "dog.avi", ["dog.jpg"], seconds_each=0.5)
    c = vision_server.client(timeout=180)
    cam = c.setup(
        "camera",
        {
            "response_format": "camera.raw",
            "input": str(clip),
            "frame_width": 640,
            "frame_height": 480,
            "enoutput": False,
        },
    )
    vlm = c.setup(
        "vlm",
        {"model": "smolvlm-256M-ax630c", "response_format": "vlm.utf-8.stream", "input": ["vlm.utf-8", cam]},
        timeout=180,
    )
    eventually(lambda: c.request(vlm, "taskinfo")["data"]["unit"]["image"] is not None, step=0.2)  # a frame came
    answer = c.ask(vlm, "What is in front of the camera?", timeout=180)
    assert "dog" in answer.lower(), answer
    c.exit(vlm)
    c.exit(cam)


def test_camera_detect_flow_prints_detections_per_frame(tmp_path):
    """flows/camera-detect.yaml with a video file as the camera: `emberflow up FLOW` prints each frame's objects."""
    import yaml

    from emberflow.flows.spec import BUILTIN, load
    from support import Server

    flow = yaml.safe_load((BUILTIN / "camera-detect.yaml").read_text())
    flow["units"]["camera"]["params"]["input"] = str(video(tmp_path / "clip.avi", ["dog.jpg"], seconds_each=1.0))
    path = tmp_path / "camera-detect.yaml"
    path.write_text(yaml.safe_dump(flow))
    assert [u.name for u in load(path).order()] == ["camera", "yolo"]
    server = Server(tmp_path, config={"http_port": None, "grpc_port": None}, args=[str(path)])
    try:
        eventually(  # e.g. "yolo.1001: dog 0.66 [52, 146, 221, 399]; ..."
            lambda: sum(": dog " in line for line in server.log) >= 3 or server.proc.poll() is not None,
            lambda: "".join(server.log[-30:]),
            step=0.2,
        )
        assert server.proc.poll() is None, "".join(server.log[-30:])
        c = server.client(timeout=60)
        yolo = c.request("yolo", "taskinfo")["data"][0]
        info = c.request(yolo, "taskinfo")["data"]
        assert info["unit"]["frames"]["processed"] >= 3 and info["inputs"] == ["camera.1000"]
    finally:
        server.stop()


def test_demo_vision_writes_the_annotated_image(tmp_path):
    import subprocess
    import sys

    from emberflow.vision.image import decode

    out = tmp_path / "annotated.jpg"
    done = subprocess.run(
        [sys.executable, "-m", "emberflow", "demo", "vision", "--input", str(photo("dog.jpg")), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dog 0." in done.stdout and "bicycle" in done.stdout
    assert "NOT a vision-language model" in done.stdout  # the description says how it was made
    annotated, original = decode(out.read_bytes()), decode(photo("dog.jpg").read_bytes())
    assert annotated.shape == original.shape and (annotated != original).any()  # boxes were drawn


def test_what_do_you_see_flow_answers_a_spoken_question_about_the_camera(tmp_path):
    """flows/what-do-you-see.yaml: "Hey Jarvis. What do you see?" -> ASR -> vlm on the newest frame of a
    video of dog.jpg -> spoken answer; the answer names the dog and is played."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "voice"))
    from speech import utterance  # the voice tests' Piper-made speech
    from voicekit import push, wait_played

    from emberflow.flows import runner
    from emberflow.flows.spec import load
    from support import Server

    answer = tmp_path / "answer.wav"
    audio = {"source": "push", "sink": f"file:{answer}"}
    server = Server(tmp_path, config={"http_port": None, "grpc_port": None, "audio": audio})
    try:
        with server.client(timeout=300) as c:
            clip = video(tmp_path / "dog.avi", ["dog.jpg"], seconds_each=1.0)
            ids = runner.start(c, load("what-do-you-see"), overrides={"audio": audio, "camera": {"input": str(clip)}})
            push(c, utterance(0.3, "Hey Jarvis.", 0.6, "What do you see?", 1.5))
            said = "".join(m["data"]["delta"] for m in c.outputs(ids["vlm"], timeout=300))
            assert "dog" in said.lower(), said
            info = wait_played(c, timeout=300)
            assert info["played_seconds"] > 0.5
    finally:
        server.stop()


def test_an_http_mjpeg_stream_is_a_camera_source(vision_server):
    """A network camera on loopback (an MJPEG stream served here) -> camera -> yolo."""
    import threading

    from emberflow.vision.image import decode, encode_jpeg
    from emberflow.vision.mjpeg import MjpegServer

    jpeg = encode_jpeg(decode(photo("dog.jpg").read_bytes()))
    stream = MjpegServer("127.0.0.1", 0, lambda: jpeg)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1 / 15):
            stream.new_frame()

    threading.Thread(target=tick, daemon=True).start()
    c = vision_server.client(timeout=120)
    try:
        cam = c.setup(
            "camera",
            {
                "response_format": "camera.raw",
                "input": f"http://127.0.0.1:{stream.port}/stream",
                "frame_width": 640,
                "frame_height": 480,
                "enoutput": False,
            },
        )
        yolo = c.setup("yolo", {"model": "yolo11n", "response_format": "yolo.box", "input": [cam]})
        found = c.next_message(lambda m: m["work_id"] == yolo)["data"]
        assert any(d["class"] == "dog" for d in found), found
        info = c.request(cam, "taskinfo")["data"]["unit"]
        assert info["error"] is None and info["captured"] > 0 and info["source"].startswith("http://")
        c.exit(yolo)
        c.exit(cam)
    finally:
        stop.set()
        stream.close()
