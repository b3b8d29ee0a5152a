"""--channels: a model with a grey (1-channel) input, pickled whole, converted, verified and profiled from
the command line; channels that contradict the model's first convolution are bad input."""

from __future__ import annotations

import json

import pytest
import torch

from digits import DigitsODNet
from test_cli import assert_clean_error, run_cli
from variants import randomize


@pytest.fixture(scope="module")
def grey_model_file(tmp_path_factory):
    """DigitsODNet on 1-channel 32x32 input (stem conv, then three ODConv layers), seeded, pickled whole."""
    path = tmp_path_factory.mktemp("grey") / "grey_digits.pt"
    torch.save(randomize(DigitsODNet(in_channels=1), seed=3), path)
    return path


def test_grey_model_converts_verifies_and_profiles(grey_model_file, tmp_path):
    out = tmp_path / "out"
    converted = run_cli("convert", grey_model_file, "--unsafe-pickle", "--channels", "1", "--imgsz", "32",
                        "--target", "onnx", "-o", out)
    assert converted.exit_code == 0, converted.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"][1] == 1
    assert manifest["preprocessing"]["color"] == "L" and len(manifest["preprocessing"]["mean"]) == 1
    assert manifest["parity"]["passed"] and manifest["parity"]["input_shapes"] == [[1, 32, 32]]
    assert len(manifest["odconv_layers"]) == 3

    verified = run_cli("verify", out, "-c", grey_model_file, "--unsafe-pickle", "--runtime", "all",
                       "--json", tmp_path / "report.json")
    assert verified.exit_code == 0, verified.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and [r["runtime"] for r in report["runtimes"]] == ["onnxruntime", "openvino"]
    assert set(report["samples"]) == {"photographs", "random"}  # the photographs in grey, and random inputs
    for runtime in report["runtimes"]:
        (output,) = runtime["parity"]["outputs"]
        assert output["reference_shape"][1:] == [10] and output["max_abs_error"] <= output["limit"]

    profiled = run_cli("profile", out, "--runtime", "onnxruntime", "-n", "3", "--time", "0.5",
                       "--json", tmp_path / "profile.json")
    assert profiled.exit_code == 0, profiled.stderr
    assert json.loads((tmp_path / "profile.json").read_text())["runs"]


def test_channels_read_from_the_first_convolution_when_left_out(grey_model_file, tmp_path):
    converted = run_cli("convert", grey_model_file, "--unsafe-pickle", "--imgsz", "32", "--target", "onnx",
                        "--no-verify", "-o", tmp_path / "out")
    assert converted.exit_code == 0, converted.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"][1] == 1


@pytest.mark.parametrize("channels", ["3", "4"])
def test_channels_contradicting_the_first_convolution_exit_2(grey_model_file, tmp_path, channels):
    result = run_cli("convert", grey_model_file, "--unsafe-pickle", "--channels", channels, "--imgsz", "32",
                     "-o", tmp_path / "out")
    assert_clean_error(result, 2, f"{channels} input channel(s) asked", "first convolution (stem.0, Conv2d) takes 1",
                       "--channels 1")
    assert not (tmp_path / "out").exists()
