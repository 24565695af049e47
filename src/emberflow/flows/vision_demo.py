"""`emberflow demo vision --input PHOTO_OR_VIDEO [--output annotated.jpg]`: detections and a
grounded description of a photo (or of a video, frame by frame), and the annotated image.

It runs the real units on a real server, as any StackFlow client would: a yolo task gets every
image as `yolo.jpeg.base64`, a vlm task is asked to describe it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mjpeg")


def run_vision_demo(
    input: Path,
    output: Path | None,
    model: str = "yolo11n",
    question: str = "Describe the image.",
    every: int = 1,
    max_frames: int = 300,
) -> int:
    from rich.console import Console

    from emberflow.sys.launch import Launched
    from emberflow.vision.draw import describe

    console = Console()
    if not input.is_file():
        console.print(f"[red]{input}: no such file[/]")
        return 2
    frames = _frames(input, every, max_frames)
    with console.status("starting emberflow and loading the models ..."):
        server = Launched({"port": 0, "http_port": None, "grpc_port": None})
    try:
        with server.client(timeout=300) as client:
            with console.status("loading the models ..."):
                yolo = client.setup(
                    "yolo", {"model": model, "response_format": "yolo.box", "input": "yolo.jpeg.base64"}
                )
                vlm = client.setup(
                    "vlm",
                    {"model": "grounded-vlm", "response_format": "vlm.utf-8.stream", "input": "vlm.utf-8"},
                    timeout=300,
                )
            writer, last = None, None
            for n, (jpeg, rgb) in enumerate(frames):
                rid = client.infer(yolo, base64.b64encode(jpeg).decode(), object="yolo.jpeg.base64")
                reply = client.next_message(lambda m, rid=rid: m.get("request_id") == rid, timeout=120)
                if reply["error"]["code"]:
                    console.print(f"[red]{reply['error']['message']}[/] {reply.get('data')}")
                    return 1
                found = reply["data"]
                console.print(
                    f"[bold]{'frame ' + str(n * every) if len(frames) > 1 else input.name}:[/] {describe(found)}"
                )
                last = (jpeg, rgb, found)
                writer = _write(output, rgb, found, writer)
            if writer is not None:
                writer.release()
            if last is None:
                console.print(f"[red]{input}: no frames could be read[/]")
                return 1
            client.infer(vlm, base64.b64encode(last[0]).decode(), object="vlm.jpeg.base64")
            console.print(f"[bold blue]{question}[/] ", end="")
            for piece in client.stream(vlm, question, timeout=300):
                console.print(piece, end="", soft_wrap=True)
            console.print()
            info = client.request(vlm, "taskinfo")["data"]["unit"]
            console.print(f"[dim]({info['backend']})[/]")
            if output is not None:
                console.print(f"wrote {output}")
    finally:
        server.stop()
    return 0


def _frames(path: Path, every: int, max_frames: int) -> list[tuple[bytes, Any]]:
    """(JPEG bytes, RGB) of the photo, or of every `every`-th video frame."""
    import cv2

    from emberflow.vision.image import decode, encode_jpeg

    if path.suffix.lower() not in VIDEO_SUFFIXES:
        data = path.read_bytes()
        return [(data, decode(data))]
    cap = cv2.VideoCapture(str(path))
    out: list[tuple[bytes, Any]] = []
    i = 0
    while len(out) < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % every == 0:
            rgb = bgr[..., ::-1]
            out.append((encode_jpeg(rgb, 90), rgb))
        i += 1
    cap.release()
    return out


def _write(output: Path | None, rgb: Any, found: list[dict[str, Any]], writer: Any) -> Any:
    """An annotated image (the last frame of a video), or an annotated video for a video output."""
    import cv2

    from emberflow.vision.draw import annotate

    if output is None:
        return writer
    bgr = annotate(rgb, found)[..., ::-1]
    if output.suffix.lower() in VIDEO_SUFFIXES:
        if writer is None:
            writer = cv2.VideoWriter(str(output), cv2.VideoWriter.fourcc(*"MJPG"), 10, (bgr.shape[1], bgr.shape[0]))
        writer.write(bgr)
    else:
        cv2.imwrite(str(output), bgr)
    return writer
