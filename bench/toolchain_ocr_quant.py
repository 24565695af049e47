"""PP-OCRv5 recognition: fp32 vs int8 (static PTQ with `emberflow quantize`), character error rate.

Text lines are rendered with Pillow (DejaVu fonts when installed, Pillow's built-in font
otherwise): 32 lines calibrate, 100 other lines (other words, other seed) are the held-out test
set. Preprocessing follows PP-OCR's recogniser: height 48, aspect kept, (x/255 - 0.5)/0.5,
right-padded with 0 to width 320. CTC greedy decoding with the package's dictionary.
CER = Levenshtein distance / reference length, summed over the set.

The int8 models run in onnxruntime (fully optimised, like the Engine). Variants: every op vs
only Conv+MatMul (`--op-types`), minmax vs percentile calibration, full-range int8 weights vs
`--reduce-range` (7-bit weights; onnxruntime's x86 int8 kernels can saturate on full-range
weights, see docs/toolchain.md).

Run: .venv/bin/python bench/toolchain_ocr_quant.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "toolchain"))

from ocr_text import cer, charset, dataset, fonts
from toolchain_models import real_model
from toolchain_table import emit

from emberflow.toolchain.quantize import quantize_model


def main() -> None:
    rec = real_model("ocr_rec")
    classes = charset()
    font_list = fonts()
    calib_x, _ = dataset(1, 32, font_list)
    test_x, test_t = dataset(2, 100, font_list)
    tmp = Path(tempfile.mkdtemp(prefix="emberflow-ocr-"))
    rows = [("fp32", rec, 0.0)]
    variants = [  # (label, calibration method, op types, reduce_range)
        ("int8 all ops, minmax", "minmax", None, False),
        ("int8 all ops, percentile, reduce-range", "percentile", None, True),
        ("int8 Conv+MatMul, minmax", "minmax", ["Conv", "MatMul"], False),
        ("int8 Conv+MatMul, minmax, reduce-range", "minmax", ["Conv", "MatMul"], True),
        ("int8 Conv+MatMul, percentile", "percentile", ["Conv", "MatMul"], False),
        ("int8 Conv+MatMul, percentile, reduce-range", "percentile", ["Conv", "MatMul"], True),
    ]
    for i, (label, method, op_types, reduce) in enumerate(variants):
        out = tmp / f"rec_{i}.onnx"
        t0 = time.perf_counter()
        quantize_model(
            rec,
            out,
            [{"x": x} for x in calib_x],
            method=method,
            per_channel=True,
            reduce_range=reduce,
            op_types=op_types,
        )
        rows.append((label, out, time.perf_counter() - t0))
    table = []
    for label, path, qtime in rows:
        err, ms = cer(path, test_x, test_t, classes)
        table.append([label, round(path.stat().st_size / 1e6, 1), round(qtime, 1), round(err, 4), round(ms, 1)])
    emit(
        ["model", "size (MB)", "quantize time (s)", "CER", "ms per line (48x320)"],
        table,
        fonts=len(font_list),
        calibration_lines=len(calib_x),
        held_out_lines=len(test_x),
    )


if __name__ == "__main__":
    main()
