"""Test your unit without processes, sockets or a server: the same contract the unit host runs.

    from emberflow.testing import LocalTask, stackflow_replies

    def test_shout():
        with LocalTask(Shout, {"times": 2}) as task:
            assert task.infer_text("hi") == "HIHI"
            # the exact StackFlow messages a client would get for one inference message:
            replies = stackflow_replies(task, "shout.utf-8.stream",
                                        {"delta": "hi", "index": 0, "finish": True}, request_id="q1")
            assert replies[-1]["data"] == {"delta": "", "index": 2, "finish": True}

`LocalTask` validates setup params, resolves the model, fits inputs to the declared kinds and
shapes outputs with the very functions the unit host uses (`emberflow.unit.inputs`/`outputs`),
so what passes here behaves the same over TCP, UART and HTTP.
"""

from __future__ import annotations

from typing import Any

from emberflow.protocol.envelope import NONE, error_reply, reply
from emberflow.protocol.errors import Code, StackFlowError
from emberflow.unit.base import Chunk, Final
from emberflow.unit.local import LocalTask
from emberflow.unit.outputs import Out

__all__ = ["Chunk", "Code", "Final", "LocalTask", "Out", "StackFlowError", "stackflow_replies"]


def stackflow_replies(
    task: LocalTask,
    object: str,
    data: Any,
    payload: bytes | None = None,
    request_id: str = "test",
    work_id: str | None = None,
) -> list[dict[str, Any]]:
    """The StackFlow replies (`created` aside) that one inference message gets: output messages in
    the task's `response_format`, or the error reply of bad input. Binary results stay bytes (the
    JSON edge encodes them as base64). Call it once per message of a streamed input, in order."""
    work_id = work_id or task.unit.context.work_id
    fmt = task.params.response_format or f"{task.unit_cls.kind}.utf-8"
    try:
        outs = task.inference(object, data, payload)
    except StackFlowError as e:
        return [_strip(error_reply(request_id, task.unit_cls.kind, e))]
    replies = []
    for out in outs:
        value, task.out_index = out.message_data(task.out_index)
        replies.append(_strip(reply(request_id, work_id, data=NONE if value is None else value, object=fmt)))
    return replies


def _strip(msg: dict[str, Any]) -> dict[str, Any]:
    msg.pop("created", None)  # a timestamp: nothing to compare
    return msg
