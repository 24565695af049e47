"""Dynamic batching for tensor models: requests that arrive close together run as one batch.

Requests queue on the event loop; a collector takes the first one, waits at most
`max_queue_delay` for more (up to `max_batch_size` rows), concatenates their inputs along the
batch axis and runs the model in a worker thread (onnxruntime releases the GIL, so the loop keeps
accepting requests meanwhile). `instances` batches may run at once. The queue is bounded: a full
queue refuses at once (429 + Retry-After) instead of growing latency without limit, and a request
whose deadline passes while queued fails with a timeout instead of running late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("emberflow.serving.batching")


@dataclass
class BatchPolicy:
    max_batch_size: int = 8  # rows per model execution; 0 or 1 = no batching
    max_queue_delay_ms: float = 2.0  # how long the first request waits for company
    instances: int = 1  # batches allowed to run concurrently
    max_queue: int = 64  # queued requests beyond this are refused (429)
    timeout_s: float = 30.0  # default per-request deadline (queue + execution)

    @classmethod
    def from_dict(cls, d: dict) -> BatchPolicy:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown batching keys {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**known)


class QueueFull(Exception):
    def __init__(self, depth: int):
        super().__init__(f"{depth} requests are queued for this model (max_queue); retry shortly")
        self.depth = depth


class DeadlineExceeded(Exception):
    pass


@dataclass(eq=False)  # identity, not field equality: fields hold numpy arrays
class _Item:
    inputs: list[np.ndarray]
    rows: int
    deadline: float
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Runs `execute(list_of_input_arrays) -> list_of_output_arrays` with dynamic batching.

    `batchable` says whether the model's first axis is a free batch axis; when it is not, each
    request runs alone (still bounded, still on the worker threads).
    """

    def __init__(
        self,
        execute: Callable[[list[np.ndarray]], list[np.ndarray]],
        policy: BatchPolicy,
        batchable: bool,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        self.execute = execute
        self.policy = policy
        self.batchable = batchable and policy.max_batch_size > 1
        self.on_batch = on_batch
        # A deque plus a wake-up event, not asyncio.Queue: cancelling `wait_for(queue.get())` on a
        # timeout can drop an item that arrived at that instant; a missed wake-up loses nothing.
        self.queue: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self.pool = ThreadPoolExecutor(max_workers=max(1, policy.instances), thread_name_prefix="infer")
        self._slots = asyncio.Semaphore(max(1, policy.instances))
        self._runner: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self.pending = 0  # queued + running requests
        self._last_batch = 1  # requests in the previous batch: >1 means there is concurrent load

    def depth(self) -> int:
        return self.pending

    async def submit(self, inputs: Sequence[np.ndarray], timeout_s: float | None = None) -> list[np.ndarray]:
        if self.pending >= self.policy.max_queue:
            raise QueueFull(self.pending)
        if self._runner is None:
            self._runner = asyncio.create_task(self._collect())
        loop = asyncio.get_running_loop()
        timeout = self.policy.timeout_s if timeout_s is None else timeout_s
        rows = self.rows(inputs) if self.batchable else 1
        item = _Item(list(inputs), rows, time.monotonic() + timeout, loop.create_future())
        self.pending += 1
        try:
            self.queue.append(item)
            self._arrived.set()
            return await asyncio.wait_for(asyncio.shield(item.future), timeout)
        except TimeoutError:
            item.future.cancel()  # if still queued it is skipped; if running, its result is dropped
            raise DeadlineExceeded(f"no result within {timeout:.3g} s (per-request timeout)") from None
        finally:
            self.pending -= 1

    async def _collect(self) -> None:
        carry: _Item | None = None
        while True:
            first = carry or await self._next()
            # Wait for a free instance *before* gathering: requests that arrive while the model is
            # busy join the next batch, which is where batching pays off.
            await self._slots.acquire()
            try:
                carry = await self._form_batch(first)
            except Exception as e:  # never let the collector die: that would hang every later request
                log.exception("batch collector failed")
                self._slots.release()
                if not first.future.done():
                    first.future.set_exception(e)
                carry = None

    async def _form_batch(self, first: _Item) -> _Item | None:
        """Gather a batch starting with `first` and start it on the slot the caller holds; return
        the item that did not fit, if any.

        The `max_queue_delay` wait only happens under concurrent load (the previous batch had
        company): a lone client never pays it, so concurrency 1 costs no added latency.
        """
        p = self.policy
        carry: _Item | None = None
        batch = [first]
        rows = first.rows
        if self.batchable:
            wait = p.max_queue_delay_ms / 1000 if self._last_batch > 1 else 0.0
            until = time.monotonic() + wait
            while rows < p.max_batch_size:
                if not self.queue:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), left)
                    except TimeoutError:
                        break
                    continue
                nxt = self.queue.popleft()
                if rows + nxt.rows > p.max_batch_size or not self.compatible(first.inputs, nxt.inputs):
                    carry = nxt  # starts the next batch
                    break
                batch.append(nxt)
                rows += nxt.rows
        now = time.monotonic()
        live = [it for it in batch if not it.future.done() and it.deadline > now]
        for it in batch:
            if it.deadline <= now and not it.future.done():
                it.future.set_exception(DeadlineExceeded("per-request timeout passed while queued"))
        if not live:
            self._slots.release()
            return carry
        self._last_batch = len(live)
        task = asyncio.create_task(self._run(live))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return carry

    async def _next(self) -> _Item:
        while not self.queue:
            self._arrived.clear()
            await self._arrived.wait()
        return self.queue.popleft()

    async def _run(self, batch: list[_Item]) -> None:
        try:
            if len(batch) == 1:
                inputs = batch[0].inputs
            else:
                inputs = self.concat([it.inputs for it in batch])
            started = time.perf_counter()
            try:
                outputs = await self.call(inputs)
            except Exception as e:  # the model failed: every request of the batch gets the reason
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(e)
                return
            if self.on_batch is not None:
                self.on_batch(sum(it.rows for it in batch), time.perf_counter() - started)
            start = 0
            for it in batch:
                if len(batch) == 1:
                    part = outputs
                else:
                    part = self.take(outputs, start, it.rows)
                start += it.rows
                if not it.future.done():
                    it.future.set_result(part)
        finally:
            self._slots.release()

    # --- how requests combine: numpy tensors along axis 0 (subclasses batch other things) ---------
    def rows(self, inputs: Sequence[Any]) -> int:
        return int(inputs[0].shape[0]) if inputs and inputs[0].ndim else 1

    def compatible(self, a: list, b: list) -> bool:
        """Same trailing shapes and dtypes: they can be concatenated along the batch axis."""
        return len(a) == len(b) and all(x.shape[1:] == y.shape[1:] and x.dtype == y.dtype for x, y in zip(a, b))

    def concat(self, requests: list[list]) -> list:
        return [np.concatenate([r[i] for r in requests], axis=0) for i in range(len(requests[0]))]

    def take(self, outputs: list, start: int, rows: int) -> list:
        return [o[start : start + rows] for o in outputs]

    async def call(self, inputs: list) -> list:
        """Run one batch; models run in a worker thread (onnxruntime releases the GIL)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.execute, inputs)

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for t in list(self._running):
            t.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
