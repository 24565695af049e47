"""emberflow compile vs TFLite-Micro on Cortex-M: bit-exactness, flash, RAM and emulated instructions.

TFLM cannot be built for Cortex-M here (no registry ships its sources: the tflite-micro wheel
is binary only), so the TFLM side is the figures measured on this kind of machine and published
in shared/models/mlperf-tiny/README.md (gcc-arm-none-eabi 12.2 -O2, QEMU mps2-an386 -icount).
Bit-exactness is checked in this run against the tflite-micro interpreter (reference kernels).

    python bench/mcu_vs_tflm.py [--inputs 20] [--steps 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "toolchain"))

# model: (TFLM reference code bytes, arena, instructions), (TFLM + CMSIS-NN code, arena, instructions)
TFLM = {
    "kws_ref_model": ((41.3e3, 22772, 43.0e6), (84.0e3, 22820, 7.70e6)),
    "ad01_int8": ((20.4e3, 2260, 1.95e6), (31.8e3, 2580, 0.58e6)),
    "str_ww_ref_model": ((38.7e3, 15252, 8.29e6), (80.9e3, 16596, 2.23e6)),
}
FLASH_TARGET = {"kws_ref_model": 0.5}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=20, help="random inputs per model (bit-exact check)")
    ap.add_argument("--steps", type=int, default=30, help="streaming steps for the wake-word models")
    ap.add_argument("--boards", default="qemu-m4,qemu-m7,qemu-m33")
    args = ap.parse_args()

    from mcu_models import mlperf_model, residual_cnn
    from toolchain_models import real_model

    from emberflow.toolchain.mcu.check_exact import random_inputs, validate_compiled
    from emberflow.toolchain.mcu.compile import compile_model
    from emberflow.toolchain.mcu.perf import profile_compiled

    tmp = Path(tempfile.mkdtemp(prefix="emberflow-mcu-bench-"))
    models = {name: mlperf_model(f"{name}.tflite") for name in TFLM}
    models["okay_nabu"] = real_model("wake_okay_nabu")
    models["hey_jarvis"] = real_model("wake_alexa").with_name("hey_jarvis.tflite")
    models["residual_cnn"] = residual_cnn(tmp / "residual_cnn.tflite")
    print("model            | inputs | bit-exact host | bit-exact " + " | ".join(args.boards.split(",")))
    rows = []
    for name, path in models.items():
        art = compile_model(path, "stm32h747", tmp / name)
        n = args.steps if name in ("okay_nabu", "hey_jarvis") else args.inputs
        samples = random_inputs(art, n)
        verdicts = []
        for on in ["host", *args.boards.split(",")]:
            r = validate_compiled(path, art.dir, samples, on=on, host_kernels="dsp")
            elements = sum(x.elements for x in r.layers)
            differing = sum(x.differing for x in r.layers) + r.differing_outputs
            verdicts.append(f"{differing} of {elements} differ")
        print(f"{name:16} | {n:6} | " + " | ".join(verdicts))
        rows.append((name, art))
    print()
    print(
        "model            | flash (code+weights) | vs TFLM ref | vs TFLM+CMSIS | arena (= lower bound) | vs TFLM ref "
        "arena"
        " | instr M4 dsp | fewer than TFLM ref | vs TFLM+CMSIS | instr M4 portable | kernel stack | runtime+kernels"
    )
    for name, art in rows:
        b = art.manifest["build"]
        dsp = profile_compiled(art.dir, "qemu-m4", "dsp")
        portable = profile_compiled(art.dir, "qemu-m4", "portable")
        size = path_size = models[name].stat().st_size
        line = f"{name:16} | {b['model_flash']:>8} B | "
        if name in TFLM:
            (ref_code, ref_arena, ref_instr), (cm_code, _cm_arena, cm_instr) = TFLM[name]
            line += (
                f"{b['model_flash'] / (ref_code + path_size):.2f}x | {b['model_flash'] / (cm_code + size):.2f}x | "
                f"{art.manifest['arena_bytes']} ({art.manifest['arena_lower_bound']}) | "
                f"{art.manifest['arena_bytes'] / ref_arena:.2f}x | {dsp.instructions / 1e6:.3f}M | "
                f"{ref_instr / dsp.instructions:.2f}x | {dsp.instructions / cm_instr:.2f}x | "
            )
        else:
            line += (
                f"- | - | {art.manifest['arena_bytes']} ({art.manifest['arena_lower_bound']}) | - | "
                f"{dsp.instructions / 1e6:.3f}M | - | - | "
            )
        line += f"{portable.instructions / 1e6:.3f}M | {b['kernel_stack']} B | {b['runtime_and_kernels']} B"
        print(line)
    print(
        "\nTFLM columns: published figures (shared/models/mlperf-tiny/README.md), flash = TFLM code + the .tflite file;"
        " instructions are QEMU -icount emulated instructions, not cycles."
    )


if __name__ == "__main__":
    main()
