"""CPU scheduling for the voice stages on a small machine (2 cores here).

Stages compete: while Piper speaks the first phrase, llama.cpp writes the rest of the answer;
while Whisper decodes the pause, Smart Turn judges it. Two levers, both per unit process:
- thread counts (`cpu_threads`, `n_threads`): how many cores a stage may take at once;
- niceness (`nice`): who wins when both want a core. Linux keeps a nice value per thread and a
  new thread inherits its creator's, so every thread the process has now is reniced and the
  runtimes' pools created later (llama.cpp's OpenMP team, onnxruntime's) follow.
Idle thread pools must sleep, not spin: a spinning pool takes the core another stage needs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def renice_process(level: int) -> int:
    """Give every thread of this process at least the nice value `level` (0-19; a thread already
    nicer keeps its own, so a second task asking the same changes nothing); returns the calling
    thread's nice value afterwards. Only lowering priority: raising it needs privileges."""
    if not hasattr(os, "setpriority"):
        return 0
    if level > 0:
        for tid in _thread_ids():
            with contextlib.suppress(ProcessLookupError, PermissionError):  # a thread that just ended
                if os.getpriority(os.PRIO_PROCESS, tid) < level:
                    os.setpriority(os.PRIO_PROCESS, tid, min(19, level))
    return os.getpriority(os.PRIO_PROCESS, 0)


def thread_nice_values() -> dict[int, int]:
    """tid -> nice value of every thread of this process (what taskinfo shows)."""
    out = {}
    for tid in _thread_ids():
        with contextlib.suppress(ProcessLookupError):
            out[tid] = os.getpriority(os.PRIO_PROCESS, tid)
    return out


def _thread_ids() -> list[int]:
    tasks = Path(f"/proc/{os.getpid()}/task")
    return [int(p.name) for p in tasks.iterdir()] if tasks.is_dir() else [0]


def onnx_options(threads: int):  # -> onnxruntime.SessionOptions (imported lazily)
    """onnxruntime options for a stage that shares the machine: `threads` intra-op threads
    (0 = all cores), one inter-op thread, and workers that sleep when idle."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts
