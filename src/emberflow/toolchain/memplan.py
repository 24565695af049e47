"""Activation memory planning: tensor lifetimes, in-place aliasing and greedy arena placement.

The arena holds every non-constant tensor (graph inputs and outputs included, as TFLite-Micro
does). Lifetimes come from the topological order: a tensor lives from the step that produces
it (graph inputs from step 0) to its last consumer (graph outputs to the last step). Ops that
only reinterpret their input (reshape and friends) share the input's buffer. Three greedy
strategies place buffers at the lowest offset that does not collide with a buffer alive at the
same time; `best` runs all of them and keeps the smallest arena.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from emberflow.toolchain.graph import Graph

ALIAS_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
# In a QDQ graph Q and DQ only change how the same integers are described: on the device the
# float tensor before Q, the int8 tensor and the float view after DQ are one buffer.
QDQ_ALIAS_OPS = {"QuantizeLinear", "DequantizeLinear"}
STRATEGIES = ("size", "breadth", "order")


@dataclass
class Buffer:
    """One arena slot; several tensors share it when aliased."""

    tensors: list[str]
    size: int
    begin: int
    end: int
    offset: int = -1

    def overlaps(self, other: Buffer) -> bool:
        return self.begin <= other.end and other.begin <= self.end


@dataclass
class MemoryPlan:
    strategy: str
    arena_bytes: int
    lower_bound_bytes: int
    no_reuse_bytes: int
    alignment: int
    buffers: list[Buffer] = field(default_factory=list)
    tried: dict[str, int] = field(default_factory=dict)

    def table(self) -> list[dict]:
        """thinker-style rows: tensor / offset / life begin / life end / size."""
        rows = []
        for b in sorted(self.buffers, key=lambda b: (b.offset, b.begin)):
            for name in b.tensors:
                rows.append({"tensor": name, "offset": b.offset, "begin": b.begin, "end": b.end, "size": b.size})
        return rows

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("buffers")
        d["table"] = self.table()
        return d


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def device_nbytes(graph: Graph, name: str, dtypes: dict[str, str] | None) -> int:
    t = graph.tensors[name]
    if dtypes is None or name not in dtypes or t.size is None:
        return t.nbytes
    try:
        return t.size * np.dtype(dtypes[name]).itemsize
    except TypeError:
        return t.nbytes


def build_buffers(
    graph: Graph, *, inplace: bool = True, alignment: int = 16, dtypes: dict[str, str] | None = None
) -> list[Buffer]:
    """Lifetimes of every activation tensor, with alias groups merged into one buffer.

    `dtypes` gives on-device dtypes (see graph.device_dtypes); with it, QDQ pairs are
    planned as the integer buffers they become on the device.
    """
    steps = max(len(graph.nodes) - 1, 0)
    begin: dict[str, int] = {}
    end: dict[str, int] = {}
    alias_ops = ALIAS_OPS | (QDQ_ALIAS_OPS if dtypes is not None else set())
    nbytes = {name: device_nbytes(graph, name, dtypes) for name in graph.tensors}

    def is_activation(name: str) -> bool:
        t = graph.tensors.get(name)
        return bool(name) and t is not None and not t.is_const and nbytes[name] > 0

    for name in graph.inputs:
        if is_activation(name):
            begin[name] = end[name] = 0
    for i, node in enumerate(graph.nodes):
        for x in node.inputs:
            if x in begin:
                end[x] = max(end[x], i)
        for o in node.outputs:
            if is_activation(o) and o not in begin:
                begin[o] = end[o] = i
    for name in graph.outputs:
        if name in end:
            end[name] = steps

    # Union-find over alias edges: an in-place op's output is a view of its data input.
    parent = {n: n for n in begin}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    if inplace:
        for node in graph.nodes:
            if node.op_type in alias_ops and node.inputs and node.outputs:
                src, dst = node.inputs[0], node.outputs[0]
                if src in parent and dst in parent and nbytes[src] == nbytes[dst]:
                    parent[root(dst)] = root(src)

    groups: dict[str, Buffer] = {}
    for name in begin:  # insertion order = topological order, keeps output deterministic
        r = root(name)
        size = _align(nbytes[name], alignment)
        b = groups.get(r)
        if b is None:
            groups[r] = Buffer([name], size, begin[name], end[name])
        else:
            b.tensors.append(name)
            b.size = max(b.size, size)
            b.begin, b.end = min(b.begin, begin[name]), max(b.end, end[name])
    return list(groups.values())


def lower_bound(buffers: list[Buffer]) -> int:
    """Largest total of bytes alive at one step: no placement can beat it."""
    if not buffers:
        return 0
    last = max(b.end for b in buffers)
    live = [0] * (last + 2)
    for b in buffers:  # difference array over the steps
        live[b.begin] += b.size
        live[b.end + 1] -= b.size
    best = run = 0
    for v in live:
        run += v
        best = max(best, run)
    return best


def _place(order: list[Buffer], alignment: int) -> int:
    placed: list[Buffer] = []
    for buf in order:
        conflicts = sorted((p for p in placed if p.overlaps(buf)), key=lambda p: p.offset)
        offset = 0
        for p in conflicts:  # first gap big enough, scanning upwards
            if offset + buf.size <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size, alignment))
        buf.offset = offset
        placed.append(buf)
    return max((b.offset + b.size for b in placed), default=0)


def _order(buffers: list[Buffer], strategy: str) -> list[Buffer]:
    if strategy == "size":
        return sorted(buffers, key=lambda b: (-b.size, b.begin))
    if strategy == "order":
        return sorted(buffers, key=lambda b: (b.begin, -b.size))
    if strategy == "breadth":
        # Steps with the most live bytes first; within a step, biggest tensors first.
        last = max((b.end for b in buffers), default=0)
        breadth = [0] * (last + 1)
        for b in buffers:
            for s in range(b.begin, b.end + 1):
                breadth[s] += b.size
        out, seen = [], set()
        for step in sorted(range(last + 1), key=lambda s: -breadth[s]):
            for b in sorted((b for b in buffers if b.begin <= step <= b.end), key=lambda b: -b.size):
                if id(b) not in seen:
                    seen.add(id(b))
                    out.append(b)
        return out
    raise ValueError(f"unknown planner strategy {strategy!r}; choose one of {', '.join(STRATEGIES)} or best")


def plan_memory(
    graph: Graph,
    strategy: str = "best",
    *,
    inplace: bool = True,
    alignment: int = 16,
    dtypes: dict[str, str] | None = None,
) -> MemoryPlan:
    candidates = STRATEGIES if strategy == "best" else (strategy,)
    tried: dict[str, int] = {}
    best: tuple[int, str, list[Buffer]] | None = None
    for s in candidates:
        buffers = build_buffers(graph, inplace=inplace, alignment=alignment, dtypes=dtypes)
        arena = _place(_order(buffers, s), alignment)
        tried[s] = arena
        if best is None or arena < best[0]:
            best = (arena, s, buffers)
    assert best is not None  # at least one strategy was tried
    arena, chosen, buffers = best
    return MemoryPlan(
        strategy=chosen,
        arena_bytes=arena,
        lower_bound_bytes=lower_bound(buffers),
        no_reuse_bytes=sum(b.size for b in buffers),
        alignment=alignment,
        buffers=buffers,
        tried=tried,
    )
