"""The bridge's warm tasks: one per unit kind, set up on first use and kept for the next request.

Home Assistant opens one connection per request; setting up a Whisper or Piper task for each
would load the model every time. The built-in voice units host one task each, so requests of a
kind take turns (`use()` is a FIFO lock), and a request that needs other params (another model,
language or wake word) sets the task up again. A task that died with its unit is noticed in the
router's task table and set up again on the next request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from emberflow.errors import EmberflowError
from emberflow.protocol.errors import Code

if TYPE_CHECKING:
    from emberflow.gateways.local import LocalConnection
    from emberflow.sys.router import Router

log = logging.getLogger("emberflow.wyoming")


class BridgeError(EmberflowError):
    """A unit refused or failed a request: told to the Wyoming client as an `error` event."""

    def __init__(self, text: str, code: str = "emberflow"):
        super().__init__(text)
        self.text, self.code = text, code


def check(msg: dict[str, Any]) -> dict[str, Any]:
    """A reply or output, or BridgeError with its code and reason."""
    err = msg.get("error", {})
    if err.get("code", 0) != 0:
        data = msg.get("data")
        detail = data.get("detail") if isinstance(data, dict) else None
        raise BridgeError(
            f"{err.get('message', 'error')}" + (f": {detail}" if detail else ""), code=f"emberflow{err['code']}"
        )
    return msg


class WarmTasks:
    def __init__(self, router: Router, conn: LocalConnection):
        self.router = router
        self.conn = conn
        self._tasks: dict[tuple[str, ...], tuple[str, dict[str, Any]]] = {}  # kinds -> (work_id, params)
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}

    @asynccontextmanager
    async def use(self, kinds: tuple[str, ...], params: dict[str, Any]) -> AsyncIterator[str]:
        """The work id of a live task of the first of `kinds` that takes one, set up with
        `params`, for the duration of one request."""
        async with self._locks.setdefault(kinds, asyncio.Lock()):
            yield await self._task(kinds, params)

    async def _task(self, kinds: tuple[str, ...], params: dict[str, Any]) -> str:
        current = self._tasks.get(kinds)
        if current is not None:
            work_id, had = current
            if had == params and self.router.tasks.get(work_id) is not None:
                return work_id
            del self._tasks[kinds]
            if self.router.tasks.get(work_id) is not None:
                await self.conn.request(work_id, "exit")  # other params: the unit hosts one task
        error: BridgeError | None = None
        for kind in kinds:
            if kind not in self.router.units:
                continue
            answer = await self.conn.request(kind, "setup", f"{kind}.setup", dict(params))
            if answer["error"]["code"] == 0:
                self._tasks[kinds] = (answer["work_id"], params)
                log.info("wyoming: %s set up for %s", answer["work_id"], params.get("model"))
                return str(answer["work_id"])
            try:
                check(answer)
            except BridgeError as e:
                error = e
            if answer["error"]["code"] != Code.TASK_FULL:  # another kind would fail the same way
                break
        raise error or BridgeError(f"no unit of kind {' or '.join(kinds)} is installed")

    async def warm(self, kinds: tuple[str, ...], params: dict[str, Any]) -> None:
        """Set a task up ahead of the first request (errors are logged: the request will tell them)."""
        try:
            async with self.use(kinds, params):
                pass
        except BridgeError as e:
            log.warning("wyoming: could not warm %s: %s", kinds[0], e.text)

    async def close(self) -> None:
        for work_id, _ in list(self._tasks.values()):
            if self.router.tasks.get(work_id) is not None:
                await self.conn.request(work_id, "exit")
        self._tasks.clear()
