"""Memory planner invariants on real graphs and on random lifetimes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toolchain_models import real_model

from emberflow.toolchain.graph import Graph, Node, TensorInfo, device_dtypes, load_graph
from emberflow.toolchain.memplan import _align, _order, _place, build_buffers, lower_bound, plan_memory


def assert_valid(plan):
    bufs = plan.buffers
    for i, a in enumerate(bufs):
        assert a.offset >= 0 and a.offset % plan.alignment == 0
        assert a.offset + a.size <= plan.arena_bytes
        for b in bufs[i + 1 :]:
            if a.overlaps(b):  # alive at the same time -> disjoint in memory
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
    assert plan.lower_bound_bytes <= plan.arena_bytes <= plan.no_reuse_bytes


@pytest.mark.parametrize("key", ["wake_okay_nabu", "wake_alexa", "ocr_cls"])
@pytest.mark.parametrize("strategy", ["size", "breadth", "order", "best"])
def test_plans_of_real_models_are_valid(key, strategy):
    g = load_graph(real_model(key), {"x": (1, 3, 48, 192)} if key == "ocr_cls" else None)
    plan = plan_memory(g, strategy, dtypes=device_dtypes(g))
    assert_valid(plan)
    assert plan.arena_bytes < plan.no_reuse_bytes


def test_best_is_the_smallest_strategy(digits_int8):
    g = load_graph(digits_int8)
    plan = plan_memory(g, "best", dtypes=device_dtypes(g))
    assert plan.arena_bytes == min(plan.tried.values())


def test_inplace_reshape_shares_the_buffer(digits_fp32):
    g = load_graph(digits_fp32)
    with_alias = plan_memory(g, "size")
    without = plan_memory(g, "size", inplace=False)
    rows = {r["tensor"]: r for r in with_alias.table()}
    assert rows["flat"]["offset"] == rows["pool"]["offset"]  # Flatten is a view of the pool output
    assert with_alias.no_reuse_bytes < without.no_reuse_bytes


def test_qdq_graph_is_planned_in_int8(digits_fp32, digits_int8):
    fp32 = plan_memory(load_graph(digits_fp32))
    g = load_graph(digits_int8)
    int8 = plan_memory(g, dtypes=device_dtypes(g))
    assert int8.arena_bytes * 3 < fp32.arena_bytes * 1.2  # ~4x smaller, modulo alignment


def test_unknown_strategy_message(digits_fp32):
    with pytest.raises(ValueError, match="choose one of size, breadth, order"):
        plan_memory(load_graph(digits_fp32), "fastest")


def chain_graph(sizes_and_uses):
    """A graph where tensor i is produced by node i and read by the nodes listed for it."""
    n = len(sizes_and_uses)
    tensors = {f"t{i}": TensorInfo(f"t{i}", (size,), "int8") for i, (size, _) in enumerate(sizes_and_uses)}
    nodes = []
    for i in range(n):
        ins = [f"t{j}" for j, (_, reads) in enumerate(sizes_and_uses) if i in reads and j < i]
        nodes.append(Node(f"n{i}", "Add", ins, [f"t{i}"]))
    return Graph("random", "onnx", nodes, tensors, [], [f"t{n - 1}"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.sets(st.integers(0, 30), max_size=4)), min_size=1, max_size=30))
def test_random_lifetimes_never_collide(spec):
    g = chain_graph(spec)
    for strategy in ("size", "breadth", "order"):
        buffers = build_buffers(g)
        arena = _place(_order(buffers, strategy), 16)
        for i, a in enumerate(buffers):
            for b in buffers[i + 1 :]:
                if a.overlaps(b):
                    assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
        assert lower_bound(buffers) <= arena <= sum(_align(b.size, 16) for b in buffers)
