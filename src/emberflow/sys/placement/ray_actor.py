"""The Ray actor that hosts a unit kind on a cluster node: the unchanged `UnitHost` loop inside it.

Imported by the sys daemon (the Ray driver) and by Ray's workers, which need emberflow installed
(the same version as the front door) and the unit's module importable.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import ray

from emberflow.unit.host import UnitHost
from emberflow.unit.registry import load_unit_class


class UnitHostActor:
    """One unit host. `where` answers at once (placement, for status and tests); `serve` runs
    the host's loop until sys sends Shutdown or the actor is killed."""

    def where(self) -> dict[str, Any]:
        ctx = ray.get_runtime_context()
        return {
            "node_id": ctx.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "actor_id": ctx.get_actor_id(),
        }

    def serve(self, host: str, kind: str, path: str, control_addr: str, model_dirs: list[str], log_level: str) -> int:
        logging.basicConfig(level=log_level, format=f"%(asctime)s {host}@ray %(levelname)s %(message)s")
        # Data sockets bind this node's address: linked tasks on other machines connect to them.
        data_bind = f"tcp://{ray.util.get_node_ip_address()}"
        rundir = tempfile.mkdtemp(prefix=f"emberflow-{kind}-")  # nothing is bound here with tcp data sockets
        UnitHost(
            load_unit_class(kind, path),
            control_addr,
            rundir,
            [Path(d) for d in model_dirs],
            data_bind=data_bind,
            identity=host,
        ).run()
        return 0


RemoteUnitHost = ray.remote(UnitHostActor)
