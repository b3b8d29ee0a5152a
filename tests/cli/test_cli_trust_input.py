"""Bad input is refused early, with exit 2 and one line naming what is wrong: damaged weights before any
export, bad option values before the checkpoint is read, report paths before the work that fills them."""

from __future__ import annotations

import pickle
import time

import pytest
import torch

from odexport import models
from test_cli import assert_clean_error, run_cli

ARCH = "mobilenetv2_050"  # the cheapest zoo model
CLASSIFIER = "classifier.1.weight"
STEM = "features.0.0.weight"


def _state_dict(num_classes: int = 10) -> dict[str, torch.Tensor]:
    model = models.create_model(ARCH, num_classes=num_classes)
    if num_classes:  # seeded weights need a non-empty classifier to scale by
        with torch.no_grad():
            models.randomize_(model, seed=0)
    return {key: value.clone() for key, value in model.state_dict().items()}


def _with(key: str, change) -> dict[str, torch.Tensor]:
    state_dict = _state_dict()
    state_dict[key] = change(state_dict[key])
    return state_dict


def _poisoned(value: float):
    def poison(tensor: torch.Tensor) -> torch.Tensor:
        tensor.view(-1)[3] = value
        return tensor
    return poison


BAD_WEIGHTS = {
    "int64": (lambda: _with(STEM, lambda t: t.to(torch.int64)), f"state_dict key '{STEM}' holds torch.int64"),
    "nan": (lambda: _with(STEM, _poisoned(float("nan"))), f"state_dict key '{STEM}' holds NaN"),
    "inf": (lambda: _with(CLASSIFIER, _poisoned(float("inf"))), f"state_dict key '{CLASSIFIER}' holds inf"),
    "zero-classes": (lambda: _state_dict(num_classes=0), f"state_dict key '{CLASSIFIER}' [0, 1280] is a classifier "
                                                         "with zero classes"),
}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")
@pytest.mark.parametrize("verify", ["--verify", "--no-verify"])
@pytest.mark.parametrize("damage", list(BAD_WEIGHTS))
def test_bad_weights_stop_at_load_before_any_export(tmp_path, damage, verify):
    make, words = BAD_WEIGHTS[damage]
    checkpoint = tmp_path / "damaged.pth.tar"
    torch.save({"epoch": 3, "state_dict": make()}, checkpoint)
    out = tmp_path / "out"
    result = run_cli("convert", checkpoint, "-o", out, "--imgsz", "32", "--target", "onnx", verify)
    assert_clean_error(result, 2, words, str(checkpoint))
    assert "Load: failed" in result.stderr and "ONNX:" not in result.stderr  # no export was started
    assert not out.exists() and not list(tmp_path.rglob("*.onnx"))


def test_a_whole_pickle_says_so_and_how_to_load_it(tmp_path):
    checkpoint = tmp_path / "weights.pkl"
    with checkpoint.open("wb") as file:
        pickle.dump(_state_dict(), file)
    result = run_cli("convert", checkpoint, "-o", tmp_path / "out", "--imgsz", "32", "--target", "onnx")
    assert_clean_error(result, 2, "is a plain Python pickle", "--unsafe-pickle", "runs arbitrary code", "trust")
    assert "truncated" not in result.stderr and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def corrupt_checkpoint(tmp_path_factory):
    """A checkpoint that fails to load: an option error reported instead proves the option came first."""
    path = tmp_path_factory.mktemp("corrupt") / "corrupt.pth.tar"
    path.write_bytes(b"PK\x03\x04" + bytes(64))
    return path


@pytest.mark.parametrize("options, words", [
    (["--imgsz", "big"], ["'big' is not an int or H,W"]),
    (["--imgsz", "100000"], ["--imgsz 100000,100000 is larger than 8192"]),
    (["--imgsz", "4"], ["too small"]),
    (["--batch", "0"], ["batch '0' is not a positive int"]),
    (["--batch", "100000"], ["--batch 100000 is not between 1 and 4096"]),
    (["--batch", "4000", "--imgsz", "4000"], ["a forward pass at batch 4000, 3x4000x4000 needs at least",
                                             "GB of memory", "--batch or --imgsz"]),
    (["--batch", "dynamic", "--lowering", "dynamic-weight"], ["cannot export a dynamic batch"]),
    (["--precision", "fp64"], ["unknown precision 'fp64'"]),
    (["--target", "tensorrt"], ["unknown target 'tensorrt'"]),
    (["--lowering", "winograd"], ["unknown lowering 'winograd'"]),
    (["--layout", "nested"], ["no 'nested' layout"]),
    (["--channels", "0"], ["--channels 0 is not a positive count"]),
    (["--precision", "int8", "--calibration", "synthetic", "--calibration-size", "0"],
     ["--calibration-size 0 is not between 1 and 10000"]),
    (["--precision", "int8", "--calibration", "synthetic", "--calibration-size", "9000", "--imgsz", "2048"],
     ["holding 9000 calibration samples at 3x2048x2048 needs at least", "--calibration-size or --imgsz"]),
    (["--precision", "int8"], ["needs calibration images"]),
    (["--temperature", "0"], ["--temperature 0.0 is not a positive number"]),
    (["--temperature", "inf"], ["--temperature inf is not a positive number"]),
    (["--attention-batchnorm", "sometimes"], ["'sometimes' is not one of apply, skip"]),
])
def test_every_option_is_checked_before_the_checkpoint_is_read(corrupt_checkpoint, tmp_path, options, words):
    result = run_cli("convert", corrupt_checkpoint, "-o", tmp_path / "out", *options)
    assert_clean_error(result, 2, *words)
    assert "Load:" not in result.stderr and "corrupt" not in result.stderr.replace(str(corrupt_checkpoint), "")
    assert not (tmp_path / "out").exists()


def test_a_huge_size_is_refused_fast_without_loading(official_checkpoint, tmp_path):
    checkpoint = official_checkpoint("od_resnet18")
    start = time.perf_counter()
    result = run_cli("convert", checkpoint, "-o", tmp_path / "out", "--imgsz", "100000")
    assert_clean_error(result, 2, "--imgsz 100000,100000")
    assert "Load:" not in result.stderr and time.perf_counter() - start < 5


def test_inspect_checks_its_size_before_reading(corrupt_checkpoint):
    assert_clean_error(run_cli("inspect", corrupt_checkpoint, "--imgsz", "100000"), 2, "--imgsz 100000,100000")


# --- calibration --------------------------------------------------------------------------------------

def _int8(checkpoint, out, calibration):
    return run_cli("convert", checkpoint, "-o", out, "--imgsz", "32", "--target", "onnxruntime",
                   "--precision", "int8", "--calibration", calibration, "--calibration-size", "4")


def test_calibration_folder_problems_name_the_option_before_loading(corrupt_checkpoint, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    result = _int8(corrupt_checkpoint, tmp_path / "out", empty)
    assert_clean_error(result, 2, f"--calibration {empty}: holds no images")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    result = _int8(corrupt_checkpoint, tmp_path / "out", damaged)
    assert_clean_error(result, 2, f"--calibration: {damaged / 'a.png'} is an unreadable image")
    result = _int8(corrupt_checkpoint, tmp_path / "out", tmp_path / "missing")
    assert_clean_error(result, 2, "--calibration", "neither a folder of images nor 'synthetic'")
    assert "Load:" not in result.stderr and not (tmp_path / "out").exists()


def test_calibration_with_a_float_precision_is_ignored_with_a_warning(official_checkpoint, tmp_path):
    out = tmp_path / "out"
    # A fixed lowering: what is checked is the warning, not auto's choices (timing them took 20 s).
    result = run_cli("convert", official_checkpoint("od_mobilenetv2_050"), "-o", out, "--imgsz", "32",
                     "--target", "onnx", "--no-verify", "--calibration", "synthetic", "--lowering", "decomposed")
    assert result.exit_code == 0, result.stderr
    assert "warning: --calibration is ignored: precision fp32 is not quantized" in result.stderr
    assert (out / "model.onnx").is_file()


# --- report paths -------------------------------------------------------------------------------------

@pytest.fixture
def blocked(tmp_path):
    """A path under a file: no one, not even root, can write there."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    return blocker / "report"


@pytest.mark.parametrize("option, suffix", [("--json", ".json"), ("--junit", ".xml")])
def test_verify_refuses_an_unwritable_report_before_loading(tiny_artifacts, tmp_path, blocked, option, suffix):
    report = blocked.with_suffix(suffix)
    result = run_cli("verify", tiny_artifacts["onnx"], "-c", tmp_path / "missing.pth", option, report)
    assert_clean_error(result, 2, f"{option} {report}", "cannot write")
    assert "Load:" not in result.stderr and "missing.pth" not in result.stderr


@pytest.mark.parametrize("option, suffix", [("--json", ".json"), ("--plot", ".png")])
def test_profile_refuses_an_unwritable_report_before_measuring(tiny_artifacts, blocked, option, suffix):
    report = blocked.with_suffix(suffix)
    result = run_cli("profile", tiny_artifacts["onnx"], option, report, "-n", "1")
    assert_clean_error(result, 2, f"{option} {report}", "cannot write")
    assert "Profile:" not in result.stderr


def test_a_report_path_that_is_a_directory_is_refused(tiny_artifacts, tmp_path):
    result = run_cli("verify", tiny_artifacts["onnx"], "-c", tmp_path / "missing.pth", "--json", tmp_path)
    assert_clean_error(result, 2, f"--json {tmp_path}", "is a directory")


# --- verify and profile sizes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dynamic_artifact(tmp_path_factory, tiny_model):
    """An ONNX artifact with a dynamic batch and size, so that any --batch and --imgsz may be asked for."""
    from odexport.conversion import convert_model

    out = tmp_path_factory.mktemp("dynamic") / "onnx"
    return convert_model(tiny_model, target="onnx", output=out, imgsz=32, dynamic_size=True, verify=False,
                         batch="dynamic", lowering="decomposed").output_dir


@pytest.mark.parametrize("options, words", [
    (["--batch", "100000"], ["--batch 100000 is not between 1 and 4096"]),
    (["--imgsz", "100000"], ["--imgsz 100000,100000 is larger than 8192"]),
    (["--batch", "4000", "--imgsz", "4000"], ["a forward pass at batch 4000", "GB of memory"]),
])
def test_verify_sizes_are_refused_before_the_reference_loads(dynamic_artifact, tmp_path, options, words):
    result = run_cli("verify", dynamic_artifact, "-c", tmp_path / "missing.pth", *options)
    assert_clean_error(result, 2, *words)
    assert "Load:" not in result.stderr


@pytest.mark.parametrize("source", ["artifact", "checkpoint"])
def test_profile_sizes_are_refused_before_measuring(dynamic_artifact, corrupt_checkpoint, source):
    path = dynamic_artifact if source == "artifact" else corrupt_checkpoint
    result = run_cli("profile", path, "--batch", "4000", "--imgsz", "4000", "-n", "1")
    assert_clean_error(result, 2, "a forward pass at batch 4000", "GB of memory")
    assert "Profile:" not in result.stderr and "Load:" not in result.stderr


def test_a_bad_tuning_budget_is_refused_before_the_checkpoint_is_read(official_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("ODEXPORT_TUNING_SECONDS", "fast")
    result = run_cli("convert", official_checkpoint("od_resnet18"), "-o", tmp_path / "out", "--imgsz", "32")
    assert_clean_error(result, 2, "ODEXPORT_TUNING_SECONDS='fast'", "unset it")
    assert "Load:" not in result.stderr and not (tmp_path / "out").exists()
    # A fixed lowering times nothing, so the budget does not matter to it.
    fixed = run_cli("convert", official_checkpoint("od_resnet18"), "-o", tmp_path / "out", "--imgsz", "32",
                    "--target", "onnx", "--lowering", "decomposed", "--no-verify")
    assert fixed.exit_code == 0, fixed.stderr
