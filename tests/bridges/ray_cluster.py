"""A real multi-node Ray cluster inside this one box, for the placement tests and benches.

`ray.cluster_utils.Cluster` starts a head and extra nodes as separate raylets on loopback. Ray
rewrites 127.0.0.1 to the host's routable address unless every node (and the driver, the sys
daemon) is told `node_ip_address="127.0.0.1"`, and would refuse a multi-node cluster on one
machine without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0. A node is pinned by a custom resource
named after it, which is what `placement.<kind>.resources` asks for ({"node_b": 1}); each node
has NODE_CAPACITY of it, since every actor placed there consumes what it asks.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
# Ray declares a node dead after this many missed health checks; the defaults take ~15 s.
NODE_CAPACITY = 10
FAST_HEALTH = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 4,
}


class LoopbackCluster:
    def __init__(self) -> None:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        # Ray's workers are started by the raylets with this environment: they must import
        # emberflow from this tree and the tests' own units.
        paths = [str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "node_ip_address": LOOPBACK,
                "resources": {"head": NODE_CAPACITY},
                "include_dashboard": False,
                "_system_config": FAST_HEALTH,
            },
        )
        self.nodes: dict[str, Any] = {"head": self.cluster.head_node}

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_node(self, name: str) -> Any:
        node = self.cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK, resources={name: NODE_CAPACITY})
        self.cluster.wait_for_nodes()
        self.nodes[name] = node
        return node

    def node_id(self, name: str) -> str:
        return self.nodes[name].node_id

    def kill_node(self, name: str) -> list[int]:
        """The machine is gone: SIGKILL its raylet and every process under it (its workers, our
        unit actors). Killing the raylet alone leaves actors running: calls go worker to worker."""
        node = self.nodes.pop(name)
        raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
        victims = [*raylet.children(recursive=True), raylet]
        for p in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(victims, timeout=10)
        with contextlib.suppress(Exception):  # its processes are already gone
            self.cluster.remove_node(node, allow_graceful=False)
        return [p.pid for p in victims]

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        self.cluster.shutdown()


def ray_available() -> str | None:
    """Why the Ray tests cannot run here, or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return (
            "the ray extra is not installed (pip install 'emberflow[ray]'; its wheel may not exist for this platform)"
        )
    return None
