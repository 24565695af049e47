"""Will this model run on that device? Every violation in plain words, with what to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from emberflow.targets import MemoryRegion, Target
from emberflow.toolchain.fmt import fmt_bytes
from emberflow.toolchain.graph import Graph, device_dtypes
from emberflow.toolchain.memplan import MemoryPlan

if TYPE_CHECKING:
    from emberflow.toolchain.mcu.artifact import BuildRecord
    from emberflow.toolchain.mcu.footprint import Footprint

# Known ways around ops that small targets lack; the generic advice applies to the rest.
OP_HINTS = {
    "BatchNormalization": "fold it into the preceding Conv (onnxruntime's graph optimizer or onnxsim do this)",
    "Shape": "export with static shapes so shape arithmetic is constant-folded away",
    "Cast": "export with static shapes and consistent dtypes so casts fold away",
    "Constant": "constant-fold the graph before export",
    "HardSigmoid": "rewrite as Clip(x/6 + 0.5, 0, 1) or as a lookup table in int8",
    "Erf": "use the tanh approximation of GELU",
}
GENERIC_OP_HINT = "replace it with supported ops before export, or run this part of the graph on a host CPU"


@dataclass
class Violation:
    kind: str  # unsupported-op | dtype | flash | ram | op-limit
    message: str
    nodes: list[str] = field(default_factory=list)
    hint: str = ""


@dataclass
class CheckResult:
    target: str
    weights_bytes: int
    weights_capacity: int
    weights_region: str
    arena_bytes: int
    ram_capacity: int
    ram_region: str
    violations: list[Violation]
    notes: list[str] = field(default_factory=list)  # fits, but not where one would like (e.g. external RAM)
    # "build": flash/RAM are exact, from a cross build of the compiled C (weights_bytes is then
    # all the model's flash, arena_bytes all its RAM); "estimate": weights and the planned arena
    sizes: str = "estimate"
    sizes_how: str = ""  # where exact sizes come from, or why these are estimates
    build: BuildRecord | None = None  # the cross build's bytes by section

    @property
    def fits(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        def pct(a: int, b: int) -> str:
            return f"{100 * a / b:.0f}%" if b else "n/a"

        verdict = "fits" if self.fits else "does not fit"
        return (
            f"{verdict} {self.target}: flash {fmt_bytes(self.weights_bytes)} / {fmt_bytes(self.weights_capacity)} "
            f"({pct(self.weights_bytes, self.weights_capacity)}, {self.weights_region}), "
            f"RAM {fmt_bytes(self.arena_bytes)} / {fmt_bytes(self.ram_capacity)} "
            f"({pct(self.arena_bytes, self.ram_capacity)}, {self.ram_region}); "
            + ("exact, from the cross build" if self.sizes == "build" else "estimated")
        )

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["fits"] = self.fits
        return d


def check_model(graph: Graph, plan: MemoryPlan, target: Target, footprint: Footprint | None = None) -> CheckResult:
    """Every reason the model does not fit. Flash and RAM come from `footprint` when it
    has a cross build (see toolchain/mcu/footprint.py), else from the graph and `plan`."""
    violations: list[Violation] = []

    by_op: dict[str, list[str]] = {}
    for node in graph.nodes:
        if not target.supports_op(node.op_type):
            by_op.setdefault(node.op_type, []).append(node.name)
    for op, nodes in sorted(by_op.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
        violations.append(
            Violation(
                "unsupported-op",
                f"op {op} is not supported on {target.name} ({len(nodes)} node{'s' * (len(nodes) > 1)}: {shown})",
                nodes,
                OP_HINTS.get(op, GENERIC_OP_HINT),
            )
        )

    dtypes = device_dtypes(graph)
    bad: dict[str, list[str]] = {}
    used = {x for n in graph.nodes for x in n.inputs + n.outputs if x}
    for name in used | set(graph.inputs) | set(graph.outputs):
        dt = dtypes.get(name)
        t = graph.tensors.get(name)
        if dt is None or t is None or t.nbytes == 0 or dt in target.dtypes or dt in ("unknown", "resource"):
            continue
        bad.setdefault(dt, []).append(name)
    for dt, names in sorted(bad.items()):
        hint = (
            "quantize to int8 with `emberflow quantize`"
            if dt.startswith("float")
            else "cast or re-export with a supported type"
        )
        violations.append(
            Violation(
                "dtype",
                f"dtype {dt} is not supported on {target.name} ({len(names)} tensors, e.g. {names[0]}); "
                f"supported: {', '.join(target.dtypes)}",
                names,
                hint,
            )
        )

    notes: list[str] = []
    w_region: MemoryRegion | None
    a_region: MemoryRegion | None
    if footprint is not None and footprint.build is not None:
        weights, w_region, arena, a_region = _exact_fit(target, footprint.build, violations)
    else:
        weights, w_region, arena, a_region = _estimated_fit(target, graph, plan, violations, notes)

    for limit in target.limits:
        for node in graph.nodes:
            if node.op_type not in limit.ops:
                continue
            tensors = [graph.tensors[x] for x in node.inputs if x in graph.tensors]
            act_in = next((t for t in tensors if not t.is_const), None)
            weight = max(
                (t for t in tensors if t.is_const and t.shape and len(t.shape) > 1),
                key=lambda t: t.nbytes,
                default=None,
            )
            out = graph.tensors.get(node.outputs[0]) if node.outputs else None
            problems = []
            for label, t, cap in (
                ("input", act_in, limit.max_input_bytes),
                ("weight", weight, limit.max_weight_bytes),
                ("output", out, limit.max_output_bytes),
            ):
                if cap is not None and t is not None and _device_bytes(t, dtypes) > cap:
                    problems.append(f"{label} {fmt_bytes(_device_bytes(t, dtypes))} > {fmt_bytes(cap)}")
            if problems:
                violations.append(
                    Violation(
                        "op-limit",
                        f"{node.op_type} {node.name}: " + ", ".join(problems) + f" per call on {target.name}",
                        [node.name],
                        limit.hint,
                    )
                )

    return CheckResult(
        target=target.name,
        weights_bytes=weights,
        weights_capacity=w_region.bytes if w_region else 0,
        weights_region=w_region.name if w_region else "none",
        arena_bytes=arena,
        ram_capacity=a_region.bytes if a_region else 0,
        ram_region=a_region.name if a_region else "none",
        violations=violations,
        notes=notes,
        sizes=footprint.source if footprint else "estimate",
        sizes_how=footprint.how if footprint else "",
        build=footprint.build if footprint else None,
    )


def _exact_fit(
    target: Target, b: BuildRecord, violations: list[Violation]
) -> tuple[int, MemoryRegion, int, MemoryRegion]:
    """The compiled model against the regions `emberflow compile` links it into."""
    from emberflow.toolchain.mcu.board import flash_region, ram_region

    flash, ram = flash_region(target), ram_region(target)
    place = "the region `emberflow compile` links the model into"
    if b["model_flash"] > flash.bytes:
        violations.append(
            Violation(
                "flash",
                f"the compiled model needs {fmt_bytes(b['model_flash'])} of flash (weights and "
                f"parameters {fmt_bytes(b['weights'])}, code {fmt_bytes(b['model_code'])}, runtime "
                f"and kernels {fmt_bytes(b['runtime_and_kernels'])}), {b['model_flash'] - flash.bytes} "
                f"bytes more than {target.name}'s {flash.name} ({fmt_bytes(flash.bytes)}), {place}",
                hint="prune or choose a smaller model or a bigger target; or place .nn_weights in "
                "external flash with your own linker script",
            )
        )
    if b["model_ram"] > ram.bytes:
        violations.append(
            Violation(
                "ram",
                f"the compiled model needs {fmt_bytes(b['model_ram'])} of RAM (arena "
                f"{fmt_bytes(b['arena'])}, state {fmt_bytes(b['state'])}, its data "
                f"{fmt_bytes(b['model_data_bss'])}, kernel stack {b['kernel_stack']} B), "
                f"{b['model_ram'] - ram.bytes} bytes more than {target.name}'s {ram.name} "
                f"({fmt_bytes(ram.bytes)}), {place}",
                hint="reduce the input resolution or sequence length, or split the model",
            )
        )
    return b["model_flash"], flash, b["model_ram"], ram


def _estimated_fit(
    target: Target,
    graph: Graph,
    plan: MemoryPlan,
    violations: list[Violation],
    notes: list[str],
) -> tuple[int, MemoryRegion | None, int, MemoryRegion | None]:
    """The graph's weights and the planned arena against the target's memories."""
    weights = graph.weight_bytes
    w_region = _place_in(target.regions_for("weights"), weights, "weights", notes)
    if w_region is None or weights > w_region.bytes:
        cap = w_region.bytes if w_region else 0
        violations.append(
            Violation(
                "flash",
                f"weights need {fmt_bytes(weights)} but the largest weight memory on {target.name} "
                f"({w_region.name if w_region else 'none'}) holds {fmt_bytes(cap)}"
                + (f" ({weights / cap:.1f}x too big)" if cap else ""),
                hint="quantize to int8 (4x smaller than float32), prune, or choose a smaller model or a bigger target",
            )
        )

    a_region = _place_in(target.regions_for("activations"), plan.arena_bytes, "the activation arena", notes)
    if a_region is None or plan.arena_bytes > a_region.bytes:
        cap = a_region.bytes if a_region else 0
        violations.append(
            Violation(
                "ram",
                f"activation arena needs {fmt_bytes(plan.arena_bytes)} (lower bound "
                f"{fmt_bytes(plan.lower_bound_bytes)}) "
                f"but the largest RAM on {target.name} ({a_region.name if a_region else 'none'}) holds "
                f"{fmt_bytes(cap)}",
                hint="reduce the input resolution or sequence length, quantize activations to int8, or split the model",
            )
        )

    return weights, w_region, plan.arena_bytes, a_region


def _place_in(regions, size: int, what: str, notes: list[str]):
    """The first region (profiles list them fastest first) that holds `size`; else the largest."""
    if not regions:
        return None
    for i, region in enumerate(regions):
        if size <= region.bytes:
            if i:
                notes.append(
                    f"{what} ({fmt_bytes(size)}) does not fit {regions[0].name} ({fmt_bytes(regions[0].bytes)}); "
                    f"it goes to {region.name}" + (f" ({region.note})" if region.note else "")
                )
            return region
    return max(regions, key=lambda m: m.bytes)


def _device_bytes(t, dtypes: dict[str, str]) -> int:
    """Bytes of a tensor in its on-device dtype (an int8 QDQ tensor is 1 byte per element)."""
    import numpy as np

    dt = dtypes.get(t.name, t.dtype)
    try:
        return (t.size or 0) * np.dtype(dt).itemsize
    except TypeError:
        return t.nbytes
