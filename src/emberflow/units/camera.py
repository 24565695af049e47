"""The camera unit (StackFlow §7.9): frames from a V4L2 device, a video file, an RTSP/HTTP stream,
or JPEG frames a client pushes, at `frame_width` x `frame_height`.

`camera.raw` publishes raw BGR frames on the bus only (linked yolo/vlm tasks read them; no JPEG
round trip between units); `image.jpeg.base64` also sends each frame to the client as base64
JPEG. Capture runs on its own thread and keeps only the newest frame for the bus: a frame
replaced before it was published (a slow consumer holding the lossless link) is counted in
taskinfo `unit.dropped`, never lost silently. `enable_webstream` serves an MJPEG preview over
HTTP (loopback by default). Video files are paced at their own frame rate and loop.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from emberflow.unit import IO, Code, Unit, UnitError, UnitParams, action
from emberflow.vision import capture, frames
from emberflow.vision.image import DEFAULT_MAX_PIXELS, decode, encode_jpeg

log = logging.getLogger("emberflow.camera")


class CameraParams(UnitParams):
    response_format: Literal["camera.raw", "image.jpeg.base64"] = "camera.raw"
    frame_width: int = Field(640, ge=16, le=7680)
    frame_height: int = Field(480, ge=16, le=4320)
    fps: float = Field(0.0, ge=0.0, le=240.0, description="Frame rate; 0 = the source's own (30 if unknown).")
    loop: bool = Field(True, description="Start a video file again at its end.")
    realtime: bool = Field(True, description="Pace video files at their frame rate (False: as fast as read).")
    jpeg_quality: int = Field(80, ge=10, le=100)
    enable_webstream: bool = Field(False, description="Serve an MJPEG preview over HTTP.")
    webstream_host: str = Field("127.0.0.1", description="Preview bind address (loopback unless asked).")
    webstream_port: int = Field(8989, ge=0, le=65535, description="Preview port (StackFlow's 8989; 0 = any).")


class CameraUnit(Unit[CameraParams]):
    """Camera frames from a device, a file, a stream, or client pushes."""

    kind = "camera"
    max_tasks = 1
    needs_model = False
    output_policy = "latest"  # a consumer wants the newest frame; superseded ones are counted drops
    Params = CameraParams
    inputs = {"image": IO.IMAGE}
    outputs = {"frame": IO.IMAGE}

    @classmethod
    def client_files(cls, data: dict[str, Any]) -> list[str]:
        """A video file named as input (devices are /dev/videoN or N; streams are URLs)."""
        entries = data.get("input", [])
        return [
            e
            for e in ([entries] if isinstance(entries, str) else entries)
            if isinstance(e, str) and not e.startswith("camera") and capture.names_a_file(e)
        ]

    def setup(self, params: CameraParams) -> None:
        self.params = params
        self.size = (params.frame_width, params.frame_height)
        self.source = next((i for i in params.input if not i.startswith("camera")), None)
        self.pushed = self.source is None  # frames arrive by inference
        if self.pushed and not params.input:
            raise UnitError(
                Code.MODEL_LOADING,
                detail="input must name the source: a V4L2 device (/dev/video0), a "
                "video file, an rtsp:// or http:// URL, or camera.jpeg.base64 "
                "to push JPEG frames",
            )
        self._lock = threading.Lock()
        self._newest: tuple[np.ndarray | bytes, dict[str, Any]] | None = None  # (BGR frame or JPEG, header)
        self._post_pending = False
        self._last_bgr: np.ndarray | None = None
        self.seq = self.published = self.dropped = 0
        self.ended = False
        self.error: str | None = None
        self._stop = threading.Event()
        self.preview = None
        if params.enable_webstream:
            from emberflow.vision.mjpeg import MjpegServer

            self.preview = MjpegServer(params.webstream_host, params.webstream_port, self._preview_jpeg)
        self._thread: threading.Thread | None = None
        if not self.pushed:
            assert self.source is not None
            cap = capture.open_source(self.source, *self.size, params.fps)
            self.fps = params.fps or capture.source_fps(cap)
            self._thread = threading.Thread(target=self._capture, args=(cap,), name="camera-capture", daemon=True)
            self._thread.start()

    def teardown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.preview is not None:
            self.preview.close()

    # --- frames in ------------------------------------------------------------------------------
    def _capture(self, cap: Any) -> None:
        try:
            self._capture_loop(cap, capture.kind_of(self.source or "") == "file")
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
            log.exception("camera capture from %s failed", self.source)
        finally:
            cap.release()

    def _capture_loop(self, cap: Any, is_file: bool) -> None:
        import cv2

        started, shown = time.monotonic(), 0
        while not self._stop.is_set():
            ok, bgr = cap.read()
            if not ok:
                if is_file and self.params.loop and shown:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                self.ended = True
                log.warning("camera source %s ended after %d frames", self.source, shown)
                return
            if is_file and self.params.realtime:  # a file plays at its frame rate, like a camera
                delay = started + shown / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -1.0:
                    started, shown = time.monotonic(), 0  # fell far behind (suspended): don't burst
            shown += 1
            self._offer(capture.fit(bgr, *self.size))

    def infer(self, data: Any) -> None:
        """A client pushed a frame (JPEG/PNG bytes): publish it as this camera's newest frame."""
        rgb = decode(data, DEFAULT_MAX_PIXELS)
        self._offer(capture.fit(np.ascontiguousarray(rgb[..., ::-1]), *self.size))

    def _offer(self, bgr: np.ndarray) -> None:
        """Keep the newest frame; ask the task thread to publish unless a publish is already due."""
        with self._lock:
            self.seq += 1
            if self._newest is not None:
                self.dropped += 1  # the previous frame was never published
            self._newest = (bgr, frames.header(self.size[0], self.size[1], "bgr24", self.seq, time.monotonic()))
            self._last_bgr = bgr
            post = not self._post_pending
            self._post_pending = True
        if self.preview is not None:
            self.preview.new_frame()
        if post:
            self.context.post(self._publish)

    # --- frames out -----------------------------------------------------------------------------
    def _publish(self) -> None:
        with self._lock:
            newest, self._newest, self._post_pending = self._newest, None, False
            if newest is None:
                return
            self.published += 1  # counted when taken: captured == published + dropped + waiting, always
        bgr, head = newest
        assert isinstance(bgr, np.ndarray)
        if self.params.response_format == "camera.raw":
            self.context.emit("camera.raw", head, payload=bgr.tobytes(), client=False)
        else:
            jpeg = encode_jpeg(bgr[..., ::-1], self.params.jpeg_quality)
            self.context.emit("image.jpeg.base64", {**head, "format": "jpeg"}, payload=jpeg)

    def _preview_jpeg(self) -> bytes | None:
        bgr = self._last_bgr
        return None if bgr is None else encode_jpeg(bgr[..., ::-1], self.params.jpeg_quality)

    # --- control --------------------------------------------------------------------------------
    @classmethod
    @action("list_camera", unit_level=True)
    def list_devices(cls, data: Any) -> tuple[str, list[str]]:
        """StackFlow's `{"action": "list_camera", "work_id": "camera"}`: no task needed."""
        return "camera.devices", capture.list_devices()

    @action("list_camera")
    def list_camera(self, data: Any) -> None:
        """The same on a task (`camera.1000`), answered as an output of the task."""
        self.context.emit("camera.devices", capture.list_devices())

    def info(self) -> dict[str, Any]:
        with self._lock:
            counts = {
                "captured": self.seq,
                "published": self.published,
                "dropped": self.dropped,
                "waiting": int(self._newest is not None),
            }
        return {
            "source": self.source or "pushed by clients",
            "frame_width": self.size[0],
            "frame_height": self.size[1],
            "fps": getattr(self, "fps", None),
            **counts,
            "ended": self.ended,
            "error": self.error,
            "devices": capture.list_devices(),
            "webstream": f"http://{self.params.webstream_host}:{self.preview.port}/" if self.preview else None,
        }
