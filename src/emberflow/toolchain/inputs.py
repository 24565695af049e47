"""Sample inputs for quantize/validate/profile: `random`, a `.npz` file, or a directory.

A `.npz` holds one array per model input (named like the input, or `arr_0`, `arr_1`, ... in
input order) with a leading sample axis: `x` of shape (N, 1, 3, 32, 32) gives N samples of
(1, 3, 32, 32). An array with exactly the input's rank is one sample if its first axis equals
the input's batch size, otherwise it is split into samples of batch 1. A directory holds `.npz`
or `.npy` files, one sample each (`.npy` only for single-input models).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emberflow.errors import EmberflowError


class InputsError(EmberflowError, ValueError):
    pass


# (name, shape with concrete dims, numpy dtype name)
InputSpec = tuple[str, tuple[int, ...], str]


def random_sample(specs: list[InputSpec], rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for name, shape, dtype in specs:
        dt = np.dtype(dtype)
        if dt.kind == "f":
            out[name] = rng.standard_normal(shape).astype(dt)
        elif dt.kind in "iu":
            # Integer inputs are usually categorical (token ids, token types, lengths, sample
            # rates): random values break them, ones are valid for nearly all.
            out[name] = np.ones(shape, dt)
        elif dt.kind == "b":
            out[name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise InputsError(f"cannot make random data for input {name} of dtype {dtype}; pass --inputs file.npz")
    return out


def _split_npz(arrays: dict[str, np.ndarray], specs: list[InputSpec], source: str) -> list[dict[str, np.ndarray]]:
    by_name = {}
    for i, (name, shape, dtype) in enumerate(specs):
        arr = arrays.get(name)
        if arr is None:
            arr = arrays.get(f"arr_{i}")
        if arr is None and len(specs) == 1 and len(arrays) == 1:
            arr = next(iter(arrays.values()))
        if arr is None:
            raise InputsError(
                f"{source} has no array for input {name!r} (has {sorted(arrays)}); name arrays after the model inputs"
            )
        arr = np.asarray(arr)
        if arr.ndim == len(shape) + 1:
            samples = list(arr)
        elif arr.ndim == len(shape):
            samples = [arr] if arr.shape[:1] == shape[:1] else [a[None] for a in arr]
        else:
            raise InputsError(
                f"{source}: array for {name!r} has shape {arr.shape}, the input expects rank {len(shape)} {shape}"
            )
        by_name[name] = [np.asarray(s).astype(dtype, copy=False) for s in samples]  # 0-d slices are numpy scalars
    counts = {len(v) for v in by_name.values()}
    if len(counts) != 1:
        raise InputsError(f"{source}: inputs have different sample counts {counts}")
    n = counts.pop()
    return [{name: by_name[name][i] for name in by_name} for i in range(n)]


def load_samples(source: str, specs: list[InputSpec], *, count: int = 8, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Materialise samples from `random`, `random:N`, a `.npz` file or a directory."""
    if source.startswith("random"):
        n = int(source.split(":", 1)[1]) if ":" in source else count
        rng = np.random.default_rng(seed)
        return [random_sample(specs, rng) for _ in range(n)]
    path = Path(source)
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as data:
            return _split_npz(dict(data), specs, str(path))
    if path.is_dir():
        samples = []
        for f in sorted(path.iterdir()):
            if f.suffix == ".npz":
                with np.load(f) as data:
                    samples.extend(_split_npz(dict(data), specs, str(f)))
            elif f.suffix == ".npy":
                if len(specs) != 1:
                    raise InputsError(
                        f"{f}: .npy samples only work for single-input models; use .npz with one array per input"
                    )
                samples.extend(_split_npz({specs[0][0]: np.load(f)}, specs, str(f)))
        if not samples:
            raise InputsError(f"{path} contains no .npz or .npy files")
        return samples
    raise InputsError(
        f"inputs {source!r}: expected 'random', 'random:N', a .npz file or a directory of .npz/.npy files"
    )


def concrete_specs(specs, shapes: dict[str, tuple[int, ...]] | None = None) -> list[InputSpec]:
    """Engine TensorSpecs -> InputSpecs, dynamic axes fixed by `shapes` or the usual defaults."""
    from emberflow.toolchain.graph import default_input_shape

    shapes = shapes or {}
    return [(s.name, default_input_shape(list(s.shape), shapes.get(s.name)), s.dtype.name) for s in specs]
