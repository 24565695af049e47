"""Fixtures of the bridge tests: one loopback Ray cluster for the whole package (started only by
the tests that ask for it: Ray's head takes 12-17 s here), stopped with everything under it."""

from __future__ import annotations

import pytest

from bridges.ray_cluster import LoopbackCluster, ray_available


@pytest.fixture(scope="package")
def ray_cluster():
    why = ray_available()
    if why:
        pytest.skip(why)
    cluster = LoopbackCluster()
    try:
        cluster.add_node("node_b")
        yield cluster
    finally:
        cluster.shutdown()
