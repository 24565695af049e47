"""NanoDet detection through emberflow vs onnxruntime called directly, and a camera -> yolo pipeline.

    python bench/vision_detect.py [--rounds 3] [--images 24] [--seconds 20] [--json]

Same model file (the installed NanoDet-m ONNX), same preprocessing code (emberflow.vision.detect),
one onnxruntime thread on every side, real photos (darknet's), all in one run:
- direct:     decode JPEG + letterbox + onnxruntime + decode boxes, in this process (the baseline);
- stackflow:  the same JPEGs as base64 `yolo.jpeg.base64` inferences over TCP to a yolo task, one
              in flight (each answer awaited: per-image latency) and two in flight (throughput);
- camera:     a camera task playing a video made of the photos at 30 fps, linked to a yolo task
              (camera.raw frames on the bus, latest-only): frames processed per second, the
              capture -> boxes latency the unit measures, frames dropped (camera and yolo count
              them), and the daemon's CPU and RSS. Its baseline is the direct loop on raw frames.
Direct and TCP runs alternate within each round, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "vision"))
from harness import Daemon, finish_machine, machine, print_table
from visionkit import DARKNET, send_raw, video

from emberflow.models.catalogue import Catalogue
from emberflow.vision.detect import NanoDet
from emberflow.vision.image import decode

PHOTOS = ["dog.jpg", "person.jpg", "kite.jpg", "horses.jpg", "giraffe.jpg", "eagle.jpg"]


def direct_fps(det: NanoDet, jpegs: list[bytes]) -> tuple[float, float]:
    """(images/s, CPU ms per image) of the in-process loop."""
    started, cpu = time.perf_counter(), time.process_time()
    for data in jpegs:
        det(decode(data))
    return len(jpegs) / (time.perf_counter() - started), 1000 * (time.process_time() - cpu) / len(jpegs)


def direct_raw_fps(det: NanoDet, frames: list[np.ndarray]) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    for bgr in frames:
        det(np.ascontiguousarray(bgr[..., ::-1]))
    return len(frames) / (time.perf_counter() - started), 1000 * (time.process_time() - cpu) / len(frames)


def tcp_fps(
    client, work_id: str, jpegs: list[bytes], in_flight: int, pid: int, raw: bool = False
) -> tuple[float, float]:
    """(images/s, CPU ms per image): the client's base64 and socket work plus every emberflow process.
    `raw`: StackFlow RAW frames (`{"RAW": N, ...}` + the JPEG bytes, as the Arduino library sends)."""
    texts = [base64.b64encode(d).decode() for d in jpegs]
    started, cpu, daemon = time.perf_counter(), time.process_time(), tree_usage(pid)[0]
    pending: list[str] = []
    for i, text in enumerate(texts):
        if raw:
            send_raw(
                client,
                {"request_id": f"b{i}", "work_id": work_id, "action": "inference", "object": "cv.jpeg.base64"},
                jpegs[i],
            )
            pending.append(f"b{i}")
        else:
            pending.append(client.infer(work_id, text, object="yolo.jpeg.base64", request_id=f"b{i}"))
        if len(pending) >= in_flight:
            rid = pending.pop(0)
            client.next_message(lambda m, rid=rid: m.get("request_id") == rid, timeout=120)
    for rid in pending:
        client.next_message(lambda m, rid=rid: m.get("request_id") == rid, timeout=120)
    cpu_ms = 1000 * (time.process_time() - cpu + tree_usage(pid)[0] - daemon) / len(texts)
    return len(texts) / (time.perf_counter() - started), cpu_ms


def by_process(pid: int) -> dict[str, float]:
    """CPU seconds of sys and of each unit process, by name."""
    out = {}
    for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            cmd, t = p.cmdline(), p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        name = cmd[cmd.index("--kind") + 1] if "--kind" in cmd else "sys"
        out[name] = out.get(name, 0.0) + t.user + t.system
    return out


def breakdown(client, work_id: str, jpegs: list[bytes], pid: int, raw: bool) -> dict[str, float]:
    """CPU ms per image of the client, sys and the yolo unit (one in flight)."""
    before, mine = by_process(pid), time.process_time()
    tcp_fps(client, work_id, jpegs, 1, pid, raw)
    after = by_process(pid)
    out = {"client": 1000 * (time.process_time() - mine) / len(jpegs)}
    out.update({k: 1000 * (after[k] - before.get(k, 0.0)) / len(jpegs) for k in after})
    return out


def tree_usage(pid: int) -> tuple[float, int]:
    """CPU seconds and RSS bytes of the daemon and its unit processes."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    cpu = rss = 0
    for p in procs:
        try:
            t = p.cpu_times()
            cpu += t.user + t.system
            rss += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return cpu, rss


def camera_run(client, pid: int, clip: Path, seconds: float) -> dict:
    cam = client.setup(
        "camera",
        {
            "response_format": "camera.raw",
            "input": str(clip),
            "frame_width": 640,
            "frame_height": 480,
            "enoutput": False,
        },
    )
    yolo = client.setup(
        "yolo", {"model": "yolo11n", "response_format": "yolo.box", "input": [cam], "n_threads": 1, "enoutput": True}
    )
    client.next_message(lambda m: m["work_id"] == yolo, timeout=120)  # running
    before = client.request(yolo, "taskinfo")["data"]["unit"]["frames"]
    cam_before = client.request(cam, "taskinfo")["data"]["unit"]
    cpu0, _ = tree_usage(pid)
    started = time.perf_counter()
    rss_peak = 0
    while time.perf_counter() - started < seconds:
        time.sleep(0.5)
        rss_peak = max(rss_peak, tree_usage(pid)[1])
        while True:  # drain the boxes the client receives
            try:
                client.next_message(lambda m: m["work_id"] == yolo, timeout=0.01)
            except TimeoutError:
                break
    elapsed = time.perf_counter() - started
    cpu1, _ = tree_usage(pid)
    after = client.request(yolo, "taskinfo")["data"]["unit"]["frames"]
    cam_after = client.request(cam, "taskinfo")["data"]["unit"]
    client.exit(yolo)
    client.exit(cam)
    processed = after["processed"] - before["processed"]
    return {
        "fps": processed / elapsed,
        "processed": processed,
        "received": after["received"] - before["received"],
        "yolo_dropped": after["dropped"] - before["dropped"],
        "camera_captured": cam_after["captured"] - cam_before["captured"],
        "camera_dropped": cam_after["dropped"] - cam_before["dropped"],
        "latency_p50_ms": after["latency_ms"]["p50"],
        "latency_p99_ms": after["latency_ms"]["p99"],
        "cpu_percent": 100 * (cpu1 - cpu0) / elapsed,
        "rss_mb": rss_peak / 2**20,
        "seconds": elapsed,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=24, help="images per timed run")
    ap.add_argument("--seconds", type=float, default=20.0, help="camera run length")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    info = machine()
    cat = Catalogue()
    model = cat.weights_path(cat.resolve("nanodet-m").descriptor)
    if model is None:
        print("NanoDet is not installed: emberflow models install nanodet-m", file=sys.stderr)
        return 2
    jpegs = [(DARKNET / PHOTOS[i % len(PHOTOS)]).read_bytes() for i in range(args.images)]
    det = NanoDet(model, threads=1)
    det(decode(jpegs[0]))  # warm-up
    tmp = Path(tempfile.mkdtemp(prefix="emberflow-bench-vision-"))
    clip = video(tmp / "photos.avi", PHOTOS, seconds_each=1.0, fps=30)
    import cv2

    from emberflow.vision.capture import fit

    cap = cv2.VideoCapture(str(clip))
    raw = []
    while len(raw) < args.images:
        ok, bgr = cap.read()
        if not ok:
            break
        raw.append(fit(bgr, 640, 480))
    results: dict[str, list[tuple[float, float]]] = {"direct": [], "tcp1": [], "tcp2": [], "raw1": [], "direct_raw": []}
    with Daemon({"media_dirs": [str(tmp)]}) as d, d.server.client(timeout=300) as c:  # the clip's directory
        pid = d.proc.pid
        yolo = c.setup(
            "yolo",
            {"model": "yolo11n", "response_format": "yolo.box", "input": "yolo.jpeg.base64", "n_threads": 1},
            timeout=120,
        )
        tcp_fps(c, yolo, jpegs[:2], 1, pid)  # warm-up
        runs = {
            "direct": lambda: direct_fps(det, jpegs),
            "tcp1": lambda: tcp_fps(c, yolo, jpegs, 1, pid),
            "tcp2": lambda: tcp_fps(c, yolo, jpegs, 2, pid),
            "raw1": lambda: tcp_fps(c, yolo, jpegs, 1, pid, True),
            "direct_raw": lambda: direct_raw_fps(det, raw),
        }
        for r in range(args.rounds):
            for name in list(runs)[r % 5 :] + list(runs)[: r % 5]:  # rotate the order: load drift hits all alike
                results[name].append(runs[name]())
        split = {"base64": breakdown(c, yolo, jpegs, pid, False), "raw": breakdown(c, yolo, jpegs, pid, True)}
        c.exit(yolo)
        camera = camera_run(c, pid, clip, args.seconds)
    med = {k: statistics.median(v[0] for v in vals) for k, vals in results.items()}
    cpu = {k: statistics.median(v[1] for v in vals) for k, vals in results.items()}
    out = {
        "machine": info,
        "fps": med,
        "cpu_ms_per_image": cpu,
        "cpu_by_process": split,
        "camera": camera,
        "ratio_tcp1": med["tcp1"] / med["direct"],
        "ratio_tcp2": med["tcp2"] / med["direct"],
        "overhead_ms_tcp1": 1000 / med["tcp1"] - 1000 / med["direct"],
        "cpu_overhead_ms_tcp": cpu["tcp1"] - cpu["direct"],
        "ratio_camera": camera["fps"] / med["direct_raw"],
        "overhead_ms_camera": 1000 / camera["fps"] - 1000 / med["direct_raw"],
    }
    desc = finish_machine(info)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"\nNanoDet-m 416x416, 1 onnxruntime thread, {args.images} darknet photos per run, median of "
        f"{args.rounds} rounds. {desc}\n"
    )
    print_table(
        ["path", "images/s", "ratio vs direct", "per-image overhead", "CPU ms/image (all processes)"],
        [
            [
                "direct (decode + preprocess + onnxruntime + boxes)",
                f"{med['direct']:.2f}",
                "1.000",
                "-",
                f"{cpu['direct']:.1f}",
            ],
            [
                "StackFlow TCP, base64 JPEG, 1 in flight",
                f"{med['tcp1']:.2f}",
                f"{out['ratio_tcp1']:.3f}",
                f"{out['overhead_ms_tcp1']:.1f} ms",
                f"{cpu['tcp1']:.1f}",
            ],
            [
                "StackFlow TCP, base64 JPEG, 2 in flight",
                f"{med['tcp2']:.2f}",
                f"{out['ratio_tcp2']:.3f}",
                f"{1000 / med['tcp2'] - 1000 / med['direct']:.1f} ms",
                f"{cpu['tcp2']:.1f}",
            ],
            [
                "StackFlow TCP, RAW frame (JPEG bytes, no base64), 1 in flight",
                f"{med['raw1']:.2f}",
                f"{med['raw1'] / med['direct']:.3f}",
                f"{1000 / med['raw1'] - 1000 / med['direct']:.1f} ms",
                f"{cpu['raw1']:.1f}",
            ],
            ["direct on raw 640x480 frames", f"{med['direct_raw']:.2f}", "1.000", "-", f"{cpu['direct_raw']:.1f}"],
            [
                "camera (30 fps video) -> yolo link",
                f"{camera['fps']:.2f}",
                f"{out['ratio_camera']:.3f}",
                f"{out['overhead_ms_camera']:.1f} ms",
                "-",
            ],
        ],
    )
    print(f"\nCPU ms per image by process, one in flight (the direct loop: {cpu['direct']:.1f}):")
    print_table(["input", *split["base64"]], [[k, *(f"{v:.1f}" for v in split[k].values())] for k in split])
    print(
        f"\ncamera -> yolo for {camera['seconds']:.0f} s: {camera['processed']} frames processed "
        f"({camera['fps']:.1f}/s) of {camera['camera_captured']} captured; dropped: {camera['yolo_dropped']} by "
        f"yolo's latest-only slot, {camera['camera_dropped']} at the camera; capture -> boxes latency p50 "
        f"{camera['latency_p50_ms']} ms, p99 {camera['latency_p99_ms']} ms; daemon CPU {camera['cpu_percent']:.0f}% "
        f"of one core, RSS {camera['rss_mb']:.0f} MB (sys + camera + yolo processes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
