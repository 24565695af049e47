"""Where a unit kind's host runs: a local OS process (the default) or a Ray actor on a cluster node.

    placement:
      llm:   {backend: ray, resources: {gpu_box: 1}, max_restarts: 3}
      embed: {backend: ray, replicas: 2, resources: [{node_a: 1}, {node_b: 1}]}
      tts:   {backend: ray, spare: false}      # no idle actor kept for a fast restart

Either way the host is the same `UnitHost` loop running the same unit class and speaking the
same control messages, so the router treats a remote task exactly like a local one. What
differs is only how the host is started, watched and stopped: the supervisor asks a backend
for a `UnitHandle` (pid, exit code, `wait`, `terminate`, `kill`) and watches that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

BACKENDS = ("local", "ray")
_KEYS = {"backend", "resources", "replicas", "num_cpus", "max_restarts", "labels", "spare"}


@dataclass(frozen=True)
class Placement:
    backend: str = "local"
    # Ray custom resources each replica needs (pins it to nodes that have them); one dict for
    # every replica, or one per replica.
    resources: tuple[dict[str, float], ...] = ()
    replicas: int = 1
    # CPUs Ray reserves for the actor. 0 by default: a unit sizes its own threads, and a
    # reservation of 1 would let a 1-CPU node hold only one unit kind.
    num_cpus: float = 0.0
    max_restarts: int = 3  # Ray restarts a dead actor this often before the supervisor makes a new one
    labels: dict[str, str] = field(default_factory=dict)  # Ray node labels the actor must land on
    # Keep an idle actor placed like each host, so a restart needs no new Ray worker (1-2 s on a
    # small box); false saves that idle worker's memory on a node short of it.
    spare: bool = True

    @property
    def remote(self) -> bool:
        return self.backend != "local"

    def resources_of(self, replica: int) -> dict[str, float]:
        if not self.resources:
            return {}
        return dict(self.resources[replica if len(self.resources) > 1 else 0])


LOCAL = Placement()


def parse_placement(raw: Any, ray_address: str | None) -> dict[str, Placement]:
    """The config's `placement` mapping, checked; ValueError says what is wrong and how to fix it."""
    if not isinstance(raw, dict):
        raise ValueError(f"placement: expected a mapping of unit kind to settings, got {raw!r}")
    out: dict[str, Placement] = {}
    for kind, spec in raw.items():
        where = f"placement.{kind}"
        if isinstance(spec, str):
            spec = {"backend": spec}
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: expected a mapping such as {{backend: ray}}, got {spec!r}")
        unknown = set(spec) - _KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
        backend = spec.get("backend", "local")
        if backend not in BACKENDS:
            raise ValueError(f"{where}.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        replicas = spec.get("replicas", 1)
        if type(replicas) is not int or replicas < 1:
            raise ValueError(f"{where}.replicas: expected a whole number >= 1, got {replicas!r}")
        resources = spec.get("resources", ())
        resources = (resources,) if isinstance(resources, dict) else tuple(resources)
        if not all(
            isinstance(r, dict)
            and all(isinstance(k, str) and isinstance(v, int | float) and v > 0 for k, v in r.items())
            for r in resources
        ):
            raise ValueError(f"{where}.resources: expected {{name: amount > 0}} or a list of them, one per replica")
        if len(resources) > 1 and len(resources) != replicas:
            raise ValueError(
                f"{where}.resources: {len(resources)} entries for {replicas} replica(s); give one "
                "for all or one per replica"
            )
        num_cpus, max_restarts = spec.get("num_cpus", 0.0), spec.get("max_restarts", 3)
        if not isinstance(num_cpus, int | float) or num_cpus < 0:
            raise ValueError(f"{where}.num_cpus: expected a number >= 0, got {num_cpus!r}")
        if type(max_restarts) is not int or max_restarts < -1:
            raise ValueError(f"{where}.max_restarts: expected a whole number >= -1 (-1 = always), got {max_restarts!r}")
        labels = spec.get("labels", {})
        if not (isinstance(labels, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
            raise ValueError(f"{where}.labels: expected {{label: value}} strings, got {labels!r}")
        spare = spec.get("spare", True)
        if not isinstance(spare, bool):
            raise ValueError(f"{where}.spare: expected true or false, got {spare!r}")
        placement = Placement(backend, resources, replicas, float(num_cpus), max_restarts, dict(labels), spare)
        if placement.remote and not ray_address:
            raise ValueError(
                f"{where}: backend {backend!r} needs a cluster to join: set ray_address "
                "(or `emberflow up --ray ADDRESS`)"
            )
        if not placement.remote and (replicas > 1 or resources or labels or "spare" in spec):
            raise ValueError(f"{where}: replicas, resources, labels and spare need backend: ray")
        out[kind] = placement
    return out


class UnitHandle(Protocol):
    """A running unit host, wherever it runs: what the supervisor watches."""

    @property
    def pid(self) -> int | None: ...

    @property
    def returncode(self) -> int | None:
        """None while it runs; < 0 is a signal (or a lost Ray actor, -9), like subprocess."""
        ...

    def where(self) -> dict[str, Any]:
        """Where it runs, for `sys.lstask` (backend; node id and address for Ray)."""
        ...

    def exit_detail(self) -> str | None:
        """Why it ended, when the exit code alone does not say it (a lost node)."""
        ...

    def connection_lost(self) -> None:
        """Its control connection to sys closed after `ready`: the host is gone or cut off. A
        handle that learns of a death later than this (a Ray actor) ends here; one whose exit is
        seen at once (a local process) ignores it."""
        ...

    async def wait(self) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...
