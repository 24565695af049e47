"""Camera preview: the newest frame of a `camera` task and the newest detections of the `yolo`
tasks reading it, as StackFlow defines them (spec §7.9, §7.10).

The dashboard does not own those tasks, so it reads their bus frames (each task publishes on its
own ZMQ XPUB address, recorded in the task table). Publishers do not drop (XPUB_NODROP): a
subscriber that stopped reading would stall the camera. So each tap reads on a thread of its
own, always, keeping only the newest frame; taps exist only while a page shows the preview
and close when nobody asked for a frame for a few seconds.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import zmq

from emberflow.bus.frame import BusFrame, topic_of
from emberflow.sys.tasks import TaskRecord, TaskTable

log = logging.getLogger("emberflow.dashboard")

IDLE_SECONDS = 5.0  # a tap nobody read from for this long is closed
JPEG_MAGIC = b"\xff\xd8"


@dataclass
class Latest:
    frame: BusFrame | None = None
    seq: int = 0


class Tap:
    """A SUB socket on one task's data address, read on its own thread."""

    def __init__(self, ctx: zmq.Context, record: TaskRecord, on_frame: Any = None):
        self.work_id, self.address = record.work_id, record.data_addr
        self.latest = Latest()
        self.used = time.monotonic()
        self._on_frame = on_frame
        self._stop = threading.Event()
        self._sock = ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVTIMEO, 200)  # wake up to notice stop()
        self._sock.setsockopt(zmq.SUBSCRIBE, topic_of(record.work_id))
        self._sock.connect(record.data_addr)
        self._thread = threading.Thread(target=self._read, name=f"dashboard-tap-{record.work_id}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    parts = self._sock.recv_multipart()
                except zmq.Again:
                    continue
                frame = BusFrame.from_parts(parts)
                if self._on_frame is not None:
                    frame = self._on_frame(frame)
                if frame is not None:
                    self.latest = Latest(frame, self.latest.seq + 1)
        except zmq.ZMQError as e:  # the context is closing
            log.debug("tap %s ended: %s", self.work_id, e)
        finally:
            self._sock.close(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class Detections:
    """Assembles one frame's detections from a yolo task's frames: a whole array (`yolo.box`),
    or one stream chunk per detection ending with `{"delta": "", "finish": true}`."""

    def __init__(self) -> None:
        self._parts: list[dict[str, Any]] = []

    def __call__(self, frame: BusFrame) -> BusFrame | None:
        data = frame.data
        if isinstance(data, list):
            return frame
        if isinstance(data, dict) and "delta" in data:
            if isinstance(data["delta"], dict):
                self._parts.append(data["delta"])
            if data.get("finish"):
                whole, self._parts = self._parts, []
                return BusFrame(frame.source, frame.object, whole, hops=frame.hops)
        return None


def to_jpeg(frame: BusFrame, params: dict[str, Any]) -> bytes | None:
    """The frame as JPEG: JPEG payloads as they are; raw YUYV 4:2:2 (`camera.raw`) converted
    with the task's frame size (needs Pillow: pip install 'emberflow[toolchain]')."""
    payload = frame.payload
    if not payload:
        return None
    if payload[:2] == JPEG_MAGIC:
        return payload
    try:
        width, height = int(params.get("frame_width", 0)), int(params.get("frame_height", 0))
    except (TypeError, ValueError):
        return None
    if width <= 0 or height <= 0 or len(payload) != width * height * 2:
        return None
    try:
        import numpy as np
        from PIL import Image
    except ImportError:
        return None
    yuyv = np.frombuffer(payload, np.uint8).reshape(height, width // 2, 4).astype(np.float32)
    y = np.stack([yuyv[..., 0], yuyv[..., 2]], axis=-1).reshape(height, width)
    u = np.repeat(yuyv[..., 1], 2, axis=1) - 128.0
    v = np.repeat(yuyv[..., 3], 2, axis=1) - 128.0
    rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], axis=-1)
    out = io.BytesIO()
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


class CameraPreview:
    def __init__(self, table: TaskTable):
        self.table = table
        self._ctx: zmq.Context | None = None
        self._taps: dict[str, Tap] = {}
        self._lock = threading.Lock()

    def tasks(self) -> dict[str, list[str]]:
        """The camera tasks and the yolo tasks, for the page to know whether to show the panel."""
        return {
            "cameras": [r.work_id for r in self.table.of_kind("camera")],
            "detectors": [r.work_id for r in self.table.of_kind("yolo")],
        }

    def _tap(self, record: TaskRecord, on_frame: Any = None) -> Tap:
        tap = self._taps.get(record.work_id)
        if tap is None or tap.address != record.data_addr:
            if tap is not None:
                tap.close()
            if self._ctx is None:
                self._ctx = zmq.Context(1)
            tap = self._taps[record.work_id] = Tap(self._ctx, record, on_frame)
        tap.used = time.monotonic()
        return tap

    def latest(self, camera: str | None = None) -> dict[str, Any] | None:
        """The newest frame of a camera task (the first one by default) with the newest
        detections of the yolo tasks linked to it; None when there is no camera task."""
        with self._lock:
            cams = self.table.of_kind("camera")
            record = next((r for r in cams if camera in (None, r.work_id)), None)
            if record is None:
                return None
            cam = self._tap(record)
            detectors = [r for r in self.table.of_kind("yolo") if record.work_id in r.inputs or not r.inputs]
            boxes: list[dict[str, Any]] = []
            box_format = "yolo.box"
            for det in detectors:
                tap = self._taps.get(det.work_id) or self._tap(det, Detections())
                tap.used = time.monotonic()
                if tap.latest.frame is not None:
                    boxes += [d for d in tap.latest.frame.data if isinstance(d, dict)]
                    box_format = str(det.params.get("response_format", box_format))
            self._close_idle_locked()
            frame = cam.latest.frame
            jpeg = to_jpeg(frame, record.params) if frame is not None else None
            return {
                "work_id": record.work_id,
                "seq": cam.latest.seq,
                "jpeg": jpeg,
                "width": record.params.get("frame_width"),
                "height": record.params.get("frame_height"),
                "detections": boxes,
                "box_format": "xywh" if "V2" in box_format else "xyxy",
                "detectors": [d.work_id for d in detectors],
            }

    def close_idle(self) -> None:
        with self._lock:
            self._close_idle_locked()

    def _close_idle_locked(self) -> None:
        now = time.monotonic()
        live = {r.work_id: r.data_addr for r in self.table}
        for work_id, tap in list(self._taps.items()):
            if now - tap.used > IDLE_SECONDS or live.get(work_id) != tap.address:
                tap.close()
                del self._taps[work_id]

    def close(self) -> None:
        with self._lock:
            for tap in self._taps.values():
                tap.close()
            self._taps.clear()
            if self._ctx is not None:
                self._ctx.term()
                self._ctx = None
