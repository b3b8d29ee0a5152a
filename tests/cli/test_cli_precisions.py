"""convert --precision/--calibration/--layout and verify's precision default, as users run them."""

from __future__ import annotations

import json

from test_cli import assert_clean_error, run_cli


def test_int8_convert_lists_float_layers_and_verify_uses_the_int8_preset(official_checkpoint, tmp_path):
    checkpoint = official_checkpoint("od_mobilenetv2_050", kernel_num=4)
    out = tmp_path / "out"
    result = run_cli("convert", checkpoint, "--target", "onnxruntime", "--imgsz", "32", "--lowering", "dynamic-weight",
                     "--precision", "int8", "--calibration", "synthetic", "--calibration-size", "4", "--no-verify",
                     "-o", out)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    assert manifest["quantization"]["calibration"] == "synthetic"
    assert manifest["quantization"]["calibration_samples"] == 4
    left = manifest["quantization"]["odconv_layers_float"]
    assert left and all(f"{layer['path']} stays float" in result.stderr for layer in left)

    report = tmp_path / "verify.json"
    verified = run_cli("verify", out, "-c", checkpoint, "--batch", "1", "--json", report, "--warn-only")
    assert verified.exit_code == 0, verified.stderr
    assert json.loads(report.read_text())["tolerance"]["name"] == "int8"


def test_a_precision_the_target_does_not_write_is_a_usage_error(official_checkpoint, tmp_path):
    checkpoint = official_checkpoint("od_mobilenetv2_050")
    result = run_cli("convert", checkpoint, "--target", "onnx", "--precision", "bf16", "-o", tmp_path / "out")
    assert_clean_error(result, 2, "does not write bf16", "openvino")
    assert not (tmp_path / "out").exists()
