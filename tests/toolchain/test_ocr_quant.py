"""PP-OCRv5 rec quantized with rendered-text calibration keeps its character error rate."""

from __future__ import annotations

import pytest
from ocr_text import cer, charset, dataset, fonts
from toolchain_models import real_model

from emberflow.toolchain.quantize import quantize_model


@pytest.mark.slow
def test_rec_int8_cer_close_to_fp32(tmp_path):
    rec = real_model("ocr_rec")
    font_list, classes = fonts(), charset()
    calib_x, _ = dataset(1, 16, font_list)
    test_x, test_t = dataset(2, 24, font_list)
    out = tmp_path / "rec_int8.onnx"
    s = quantize_model(
        rec, out, [{"x": x} for x in calib_x], method="percentile", op_types=["Conv", "MatMul"], reduce_range=True
    )
    assert s.bytes_after < 0.35 * s.bytes_before
    fp32_cer, _ = cer(rec, test_x, test_t, classes)
    int8_cer, _ = cer(out, test_x, test_t, classes)
    assert fp32_cer < 0.02
    assert int8_cer < fp32_cer + 0.03, (fp32_cer, int8_cer)
