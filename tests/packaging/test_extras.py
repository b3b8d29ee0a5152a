"""Without an optional extra, the feature that needs it fails in one line naming the extra (exit 2); and
nothing at run time needs scikit-image. Each case runs in a fresh interpreter where the module's import
really fails (``sys.modules[name] = None`` makes ``import name`` raise ImportError)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image


def _run_without(module: str, code: str) -> subprocess.CompletedProcess:
    shim = f"import sys; sys.modules[{module!r}] = None\n"
    return subprocess.run([sys.executable, "-c", shim + code], capture_output=True, text=True, timeout=300)


def _cli_without(module: str, *args) -> subprocess.CompletedProcess:
    argv = ["odexport", *map(str, args)]
    return _run_without(module, f"from odexport.cli.app import main\nsys.argv = {argv!r}\nmain()")


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith(("error:", "  hint:"))]


def test_int8_for_openvino_without_nncf_names_the_int8_extra_before_any_work(official_checkpoint, tmp_path):
    output = tmp_path / "out"
    result = _cli_without("nncf", "convert", official_checkpoint("od_resnet18"), "--target", "openvino",
                          "--precision", "int8", "--calibration", "synthetic", "--output", output)
    assert result.returncode == 2, result.stderr
    assert _error_lines(result) == ["error: int8 for OpenVINO needs NNCF: pip install 'odexport[int8]'"]
    assert not output.exists()


def test_plot_without_matplotlib_names_the_plot_extra_before_measuring(tiny_artifacts, tmp_path):
    result = _cli_without("matplotlib", "profile", tiny_artifacts["onnx"], "--plot", tmp_path / "chart.png")
    assert result.returncode == 2, result.stderr
    assert _error_lines(result) == ["error: --plot needs matplotlib: pip install 'odexport[plot]'"]
    assert "profiling" not in result.stdout  # no table: it stopped before measuring


def test_int8_for_onnx_runtime_needs_no_nncf(tiny_artifacts):
    """Only OpenVINO's quantizer is NNCF; ONNX Runtime quantizes with its own tools."""
    result = _run_without("nncf", "from odexport.backends import get_target\n"
                                  "get_target('onnxruntime').check('int8', 'flat')\nprint('ok')")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_photographs_calibration_and_user_images_read_without_scikit_image(tmp_path):
    grey16 = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 20)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    Image.fromarray(np.zeros((40, 30, 4), np.uint8)).save(tmp_path / "rgba.png")
    code = (
        "from pathlib import Path\n"
        "from odexport.inputs import photographs, read_image\n"
        "from odexport.calibration import calibration_samples\n"
        "print(photographs((32, 32)).shape, calibration_samples('synthetic', (32, 32), count=5).shape,\n"
        f"      calibration_samples(Path({str(tmp_path)!r}), (32, 32)).shape,\n"
        f"      read_image(Path({str(tmp_path)!r}) / 'grey16.png').max())\n"
    )
    result = _run_without("skimage", code)
    assert result.returncode == 0, result.stderr
    # 16-bit grey is rescaled to 8 bits (its maximum 63,980 of 65,535 lands near 249), not clipped to 255.
    expected_peak = round(int(grey16.max()) / 65535 * 255)
    assert result.stdout.split() == ["(4,", "3,", "32,", "32)", "(5,", "3,", "32,", "32)", "(2,", "3,", "32,",
                                     "32)", str(expected_peak)]
