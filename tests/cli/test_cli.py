"""The odexport command as users run it: exit codes, one-line errors, untouched output directories."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import odexport.cli.app
from odexport.cli.app import app
from odexport.manifest import MANIFEST_FORMAT, MANIFEST_PRODUCER
from odexport.models import list_models

runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(result, exit_code: int, *phrases: str) -> None:
    """Stderr ends with one error line and a hint line (after any progress lines); no traceback."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == len(lines) - 2, result.stderr
    assert lines[-1].startswith("  hint: "), result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)


@pytest.fixture
def output_dir(tmp_path):
    """An existing output directory holding an earlier artifact: errors must leave it as it was."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"format": MANIFEST_FORMAT, "producer": MANIFEST_PRODUCER, "files": []}))
    return out


def untouched(out) -> bool:
    """The earlier artifact is as it was and no staging directory was left beside it."""
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".out")]
    return not leftovers and [p.name for p in out.iterdir()] == ["manifest.json"]


def test_missing_file(tmp_path, output_dir):
    result = run_cli("convert", tmp_path / "nope.pth.tar", "-o", output_dir)
    assert_clean_error(result, 2, "nope.pth.tar", "no such file")
    assert untouched(output_dir)


def test_directory_instead_of_checkpoint(tmp_path, output_dir):
    result = run_cli("convert", tmp_path, "-o", output_dir)
    assert_clean_error(result, 2, "directory")
    assert untouched(output_dir)


def test_not_a_checkpoint(tmp_path, output_dir):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    result = run_cli("convert", path, "-o", output_dir)
    assert_clean_error(result, 2, "notes.pth")
    assert untouched(output_dir)


def test_truncated_checkpoint(official_checkpoint, tmp_path, output_dir):
    data = official_checkpoint("od_resnet18").read_bytes()
    path = tmp_path / "truncated.pth.tar"
    path.write_bytes(data[: len(data) // 2])
    result = run_cli("convert", path, "-o", output_dir)
    assert_clean_error(result, 2, "truncated")
    assert untouched(output_dir)


def test_unknown_architecture(tmp_path, output_dir):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 2)).state_dict(), path)
    result = run_cli("convert", path, "-o", output_dir)
    assert_clean_error(result, 2, "architecture")
    assert untouched(output_dir)


def test_wrong_arch(official_checkpoint, output_dir):
    result = run_cli("convert", official_checkpoint("od_resnet18"), "--arch", "od_resnet34", "-o", output_dir)
    assert_clean_error(result, 2, "od_resnet34", "layer1.2")
    assert untouched(output_dir)


def test_unknown_arch_name(official_checkpoint, output_dir):
    result = run_cli("convert", official_checkpoint("od_resnet18"), "--arch", "od_vgg16", "-o", output_dir)
    assert_clean_error(result, 2, "od_vgg16", "od_resnet18")
    assert untouched(output_dir)


def test_unknown_target(official_checkpoint, output_dir):
    result = run_cli("convert", official_checkpoint("od_resnet18"), "--target", "tensorrt", "-o", output_dir)
    assert_clean_error(result, 2, "tensorrt", "openvino")
    assert untouched(output_dir)


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_unwritable_output(official_checkpoint, tmp_path, where):
    # Tests run as root in CI, where permission bits do not stop writes: use places no one can write.
    if where == "under-a-file":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        output = blocker / "out"
    else:
        output = "/proc/odexport-test-out"
    result = run_cli("convert", official_checkpoint("od_resnet18"), "-o", output, "--imgsz", "32")
    assert_clean_error(result, 2, "cannot write")
    if where == "under-a-file":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_bad_imgsz_and_batch(official_checkpoint, output_dir):
    assert_clean_error(run_cli("convert", official_checkpoint("od_resnet18"), "--imgsz", "big", "-o", output_dir),
                       2, "big")
    assert_clean_error(run_cli("convert", official_checkpoint("od_resnet18"), "--batch", "0", "-o", output_dir),
                       2, "batch")
    assert untouched(output_dir)


def test_convert_prints_parity_and_location(official_checkpoint, tmp_path):
    output = tmp_path / "converted"
    # A model, size and target other default conversions share: auto's timings of its layers are cached.
    result = run_cli("convert", official_checkpoint("od_mobilenetv2_050", kernel_num=1), "-o", output,
                     "--imgsz", "64", "--target", "onnxruntime")
    assert result.exit_code == 0, result.stderr
    assert "PASSED" in result.stdout
    assert str(output) in result.stdout.replace("\n", "")
    assert "- arch od_mobilenetv2_050" in result.stderr
    # The default batch is fixed: convert says so, and how to ask for a dynamic one.
    said = " ".join(result.stderr.split())
    assert "the batch is fixed at 1" in said and "--batch dynamic" in said
    assert (output / "model.onnx").is_file()


def test_default_output_is_checkpoint_stem_and_target(official_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = official_checkpoint("od_resnet18")
    result = run_cli("convert", checkpoint, "--imgsz", "32", "--target", "onnx", "--no-verify")
    assert result.exit_code == 0, result.stderr
    stem = checkpoint.name.split(".")[0]
    assert (tmp_path / f"{stem}_onnx" / "model.onnx").is_file()


@pytest.mark.parametrize(
    ("arch", "kernel_num", "reduction"),
    [("od_resnet18", 4, 0.0625), ("od_mobilenetv2_050", 2, 0.25), ("resnet18", 1, 0.0625)],
)
def test_inspect_json_reports_what_was_inferred(official_checkpoint, arch, kernel_num, reduction):
    result = run_cli("inspect", official_checkpoint(arch, kernel_num=kernel_num, reduction=reduction),
                     "--json", "--imgsz", "224")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"arch", "kernel_num", "reduction", "num_classes", "params", "macs", "layers"} <= set(report)
    assert (report["arch"], report["kernel_num"], report["num_classes"]) == (arch, kernel_num, 10)
    if arch.startswith("od_"):
        assert report["reduction"] == reduction
        layer = report["layers"][0]
        assert {"path", "in_channels", "out_channels", "kernel_size", "stride", "groups", "kernel_num",
                "attentions"} <= set(layer)
        assert "channel" in layer["attentions"]
    else:
        assert report["layers"] == []


def test_inspect_counts_params_and_macs(official_checkpoint):
    od = json.loads(run_cli("inspect", official_checkpoint("od_resnet18", num_classes=1000), "--json").stdout)
    static = json.loads(run_cli("inspect", official_checkpoint("resnet18", num_classes=1000), "--json").stdout)
    assert round(od["params"] / 1e6, 2) == 11.94  # the paper's table
    assert round(static["params"] / 1e6, 2) == 11.69
    assert round(static["macs"] / 1e9, 3) == 1.814  # ResNet-18 at 224x224, as commonly reported
    # ODConv adds attention branches and kernel modulation: a small fraction of the static cost.
    assert 1.0 < od["macs"] / static["macs"] < 1.04


def test_tables_take_the_terminal_width_of_the_command_not_of_the_import(official_checkpoint, monkeypatch):
    checkpoint = official_checkpoint("od_resnet18", num_classes=10)
    monkeypatch.setenv("COLUMNS", "60")
    importlib.reload(odexport.cli.app)  # as when a terminal of 60 columns imported the CLI
    widths = {}
    for columns in (60, 160):
        monkeypatch.setenv("COLUMNS", str(columns))
        result = run_cli("inspect", checkpoint)
        assert result.exit_code == 0, result.stderr
        widths[columns] = max(len(line) for line in result.stdout.splitlines())
    assert widths[60] <= 60 < widths[160] <= 160


def test_real_process_exit_codes(official_checkpoint, tmp_path):
    """The installed console script, as a shell runs it."""
    bad = subprocess.run([sys.executable, "-m", "odexport.cli.app", "convert", str(tmp_path / "missing.pth")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "error: " in bad.stderr and "no such file" in bad.stderr
    debug = subprocess.run([sys.executable, "-m", "odexport.cli.app", "convert", str(tmp_path / "missing.pth"),
                            "--debug"], capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


# Every zoo model is inspected from its official-format checkpoint (the loader infers its arch, kernel_num
# and reduction), each ODConv one at one kernel_num, the smallest of each family at both (with and without
# the kernel attention).
BOTH_KERNEL_NUMS = ("od_resnet18", "od_mobilenetv2_050")
ONE_KERNEL_NUM = {"od_resnet34": 1, "od_resnet50": 1, "od_resnet101": 1, "od_mobilenetv2_075": 1,
                  "od_mobilenetv2_100": 4}


def _kernel_nums(arch: str) -> tuple[int, ...]:
    if not arch.startswith("od_"):
        return (1,)
    return (1, 4) if arch in BOTH_KERNEL_NUMS else (ONE_KERNEL_NUM.get(arch, 4),)


ZOO_CASES = [(arch, k) for arch in list_models() for k in _kernel_nums(arch)]

# Converted here, each with its parity checked: every block type at its smallest and largest depth or width
# (od_resnet101 for the error a deep network accumulates), both kernel counts of the smallest ODConv models.
# The variants in between (od_resnet34, the 0.75x MobileNetV2s, resnet34, resnet101) repeat those blocks at a
# depth or width between two converted ones, so converting them too takes minutes and no new path; and
# od_resnet18 1x and od_mobilenetv2_050 4x with openvino's default are tests/test_convert.py's own cases.
CONVERTED_HERE = {("od_resnet18", 4), ("od_resnet50", 1), ("od_resnet101", 1), ("od_mobilenetv2_050", 1),
                  ("od_mobilenetv2_100", 4), ("resnet18", 1), ("resnet50", 1), ("mobilenetv2_050", 1),
                  ("mobilenetv2_100", 1)}
# The default (auto) on od_mobilenetv2_050 1x; the others take one fixed lowering at the default's fixed batch
# of 1, where auto's timing of their layers would add a minute each (auto at 4 kernels on openvino is
# tests/test_convert.py's od_mobilenetv2_050 4x).
AUTO_HERE = {("od_mobilenetv2_050", 1)}
assert CONVERTED_HERE <= set(ZOO_CASES)


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "kernel_num"), ZOO_CASES, ids=[f"{a}-k{k}" for a, k in ZOO_CASES])
def test_every_zoo_model_inspects_and_each_block_type_converts_with_parity(official_checkpoint, tmp_path, arch,
                                                                        kernel_num):
    # Calibrated at the size it converts at only: a third of the time to write a deep model's checkpoint.
    checkpoint = official_checkpoint(arch, kernel_num=kernel_num, num_classes=1000, calibration_size=64)
    report = json.loads(run_cli("inspect", checkpoint, "--json", "--imgsz", "64").stdout)
    assert (report["arch"], report["kernel_num"], report["reduction"]) == (arch, kernel_num, 0.0625)
    assert report["num_classes"] == 1000
    if (arch, kernel_num) not in CONVERTED_HERE:
        return
    pinned = [] if (arch, kernel_num) in AUTO_HERE or not arch.startswith("od_") else [
        "--lowering", "decomposed", "--batch", "1"]
    result = run_cli("convert", checkpoint, "-o", tmp_path / "out", "--imgsz", "64", "--target", "openvino", *pinned)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["parity"]["passed"] and manifest["model"]["arch"] == arch


def test_inspect_and_convert_a_pickled_module_outside_the_zoo(tmp_path):
    from variants import randomize
    from variants.detection import TinyDetector

    path = tmp_path / "detector.pt"
    torch.save(randomize(TinyDetector(), seed=1), path)
    listed = run_cli("inspect", path, "--unsafe-pickle", "--json")
    assert listed.exit_code == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert [(layer["path"], layer["adapter"]) for layer in found["recognised"]] == [
        ("stem", "fused-bn-act"), ("stage1", "fused-bn-act"), ("stage2.0", "official"), ("lateral", "dyconv"),
        ("smooth", "fused-bn-act")]
    assert found["unrecognised"] == []
    shown = run_cli("inspect", path, "--unsafe-pickle")
    assert "dyconv" in shown.stdout and "Nothing unrecognised" in shown.stdout

    converted = run_cli("convert", path, "--unsafe-pickle", "--imgsz", "32", "--target", "onnx", "--temperature", "2",
                        "-o", tmp_path / "out")
    assert converted.exit_code == 0, converted.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [layer["temperature"] for layer in manifest["odconv_layers"]] == [2.0] * 5
    assert manifest["parity"]["passed"] and [o["name"] for o in manifest["outputs"]] == ["p4.0", "p4.1", "p8"]


def test_an_unrecognised_dynamic_convolution_the_generic_path_cannot_take_exits_2_with_a_hint(tmp_path):
    from variants.unrecognised import NetWithSampleLoopConv

    path = tmp_path / "unknown.pt"
    torch.save(NetWithSampleLoopConv(), path)
    listed = run_cli("inspect", path, "--unsafe-pickle", "--imgsz", "16")
    assert listed.exit_code == 0 and "1 not recognised" in listed.stdout and "SampleLoopConv" in listed.stdout
    result = run_cli("convert", path, "--unsafe-pickle", "--imgsz", "16", "--batch", "dynamic", "-o", tmp_path / "out")
    assert_clean_error(result, 2, "generic path cannot export with a dynamic batch: mix", "docs/adapters.md")
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")
def test_a_torchscript_archive_outside_the_zoo_exits_2_with_a_hint(tmp_path):
    """Its forward is compiled: the ODConv layers inside can be neither recognised nor replaced."""
    from digits import DigitsODNet
    from variants import randomize

    path = tmp_path / "traced.pt"
    torch.jit.save(torch.jit.trace(randomize(DigitsODNet(), seed=0), torch.randn(1, 3, 32, 32)), path)
    for args in (("convert", path, "--imgsz", "32", "-o", tmp_path / "out"), ("inspect", path)):
        result = run_cli(*args)
        assert_clean_error(result, 2, "TorchScript archive of a model outside the zoo (DigitsODNet)",
                           "torch.save(model)")
    assert not (tmp_path / "out").exists()
