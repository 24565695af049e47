"""`emberflow validate MODEL DIR --on ...`: the compiled C against TFLite-Micro, every layer.

Inputs run in order through both (streaming state carries over). Every output the compiled
code reports for a layer is compared element by element with the tensor TFLM computed; the
verdict is bit-exact or not, and the usual metrics table describes the outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emberflow.toolchain.mcu.artifact import Artifact
from emberflow.toolchain.mcu.reference import TflmReference
from emberflow.toolchain.mcu.runners import open_runner
from emberflow.toolchain.validate import OutputMetrics, compare


@dataclass
class LayerCheck:
    layer: int
    op: str
    tensor: str
    elements: int
    differing: int = 0
    max_abs_diff: float = 0.0  # in the tensor's units (LSB for integer layers)


@dataclass
class ExactResult:
    model: str
    compiled: str
    on: str
    samples: int
    outputs: list[OutputMetrics]
    layers: list[LayerCheck] = field(default_factory=list)
    differing_outputs: int = 0
    ticks: list[int] = field(default_factory=list)

    @property
    def bit_exact(self) -> bool:
        return self.differing_outputs == 0 and all(x.differing == 0 for x in self.layers)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["bit_exact"] = self.bit_exact
        return d


def _differing(mine: np.ndarray, want: np.ndarray) -> int:
    """Elements whose bytes differ: integer and float tensors alike, no tolerance (a float
    NaN equals the same NaN)."""
    a = np.ascontiguousarray(mine).view(np.uint8).reshape(mine.size, -1)
    b = np.ascontiguousarray(want.astype(mine.dtype)).view(np.uint8).reshape(want.size, -1)
    return int(np.count_nonzero(~(a == b).all(axis=1)))


def random_inputs(art: Artifact, count: int, seed: int = 0) -> list[list[np.ndarray]]:
    """Uniform over each input's integer range (what an int8 model can receive); a float
    input uniform over the range its QUANTIZE covers and a quarter of it beyond each end
    (values that saturate)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        sample = []
        for s in art.manifest["inputs"]:
            if np.dtype(s["dtype"]).kind == "f":
                lo, hi = s.get("float_range", [-1.0, 1.0])
                margin = (hi - lo) / 4
                x = rng.uniform(lo - margin, hi + margin, s["shape"])
                sample.append(x.astype(s["dtype"]))
                continue
            info = np.iinfo(np.dtype(s["dtype"]))
            sample.append(rng.integers(info.min, int(info.max) + 1, s["shape"]).astype(s["dtype"]))
        samples.append(sample)
    return samples


def npz_inputs(art: Artifact, path: str) -> list[list[np.ndarray]]:
    """Samples from a .npz (or directory); float data for an integer input is quantized with
    the input's scale and zero point, a float input takes it as it is."""
    from emberflow.toolchain.inputs import load_samples

    specs = [(s["name"], tuple(s["shape"]), "float32") for s in art.manifest["inputs"]]
    out = []
    for sample in load_samples(path, specs):
        row = []
        for s in art.manifest["inputs"]:
            x = np.asarray(sample[s["name"]])
            if np.dtype(s["dtype"]).kind == "f":
                row.append(x.astype(s["dtype"]).reshape(s["shape"]))
                continue
            info = np.iinfo(np.dtype(s["dtype"]))
            if s["scale"]:
                x = np.round(x / s["scale"]) + s["zero_point"]
            row.append(np.clip(x, info.min, info.max).astype(s["dtype"]).reshape(s["shape"]))
        out.append(row)
    return out


def validate_compiled(
    model: str | Path,
    compiled: str | Path,
    samples: list[list[np.ndarray]],
    on: str = "host",
    per_layer: bool = True,
    host_kernels: str = "portable",
) -> ExactResult:
    art = Artifact.open(compiled)
    reference_model = Path(art.dir / f"{art.name}.tflite")
    if not reference_model.is_file():  # compiled straight from a .tflite: that file is the reference
        reference_model = Path(model)
    ref = TflmReference(reference_model)
    layer_outs = art.layer_outputs()
    checks = {
        (layer, k): LayerCheck(
            layer,
            art.manifest["layers"][layer]["op"],
            art.manifest["layers"][layer]["outputs"][k]["name"],
            0,
        )
        for layer, k, _ in layer_outs
    }
    n_out = len(art.manifest["outputs"])
    refs: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    gots: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    result = ExactResult(str(model), str(compiled), on, len(samples), [])
    runner = open_runner(art, on, host_kernels)
    try:
        for sample in samples:
            got, layers, ticks = runner.run(sample)
            want, values = ref.run(sample, n_out, [t for _, _, t in layer_outs] if per_layer else [])
            if ticks is not None:
                result.ticks.append(ticks)
            for i in range(n_out):
                refs[i].append(want[i])
                gots[i].append(got[i])
                result.differing_outputs += _differing(np.asarray(got[i]).ravel(), np.asarray(want[i]).ravel())
            if per_layer:
                for layer, k, t in layer_outs:
                    check = checks[(layer, k)]
                    expected = values[t]
                    mine = np.frombuffer(layers.get((layer, k), b""), dtype=expected.dtype)
                    check.elements += expected.size
                    if mine.size != expected.size:
                        check.differing += expected.size
                        continue
                    want_flat = expected.ravel()
                    check.differing += _differing(mine, want_flat)
                    diff = np.abs(mine.astype(np.float64) - want_flat.astype(np.float64))
                    check.max_abs_diff = max(check.max_abs_diff, float(np.nan_to_num(diff).max(initial=0)))
    finally:
        runner.close()
    for i, spec in enumerate(art.manifest["outputs"]):
        result.outputs.append(compare(np.stack(refs[i]), np.stack(gots[i]), spec["name"], len(samples)))
    result.layers = list(checks.values()) if per_layer else []
    return result
