"""A net whose dynamic convolutions only the generic path can take converts with default options and a
dynamic batch, from Python and from the CLI, and matches PyTorch in ONNX Runtime and OpenVINO fp32 at
batch 1 and 3; a layer the generic path cannot take is refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import odexport
from odexport.cli.app import app
from odexport.errors import InputError
from variants import randomize
from variants.generic import NetWithPoolGatedConvs
from variants.unrecognised import NetWithSampleLoopConv, NetWithUnknownDynamicConv

SIZE = (20, 24)
GENERIC = ["down", "depthwise"]


def run_cli(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def net():
    return randomize(NetWithPoolGatedConvs(), seed=3)


def relative_errors(model_file, model: torch.nn.Module, target: str) -> list[float]:
    """max |runtime - PyTorch| / max |PyTorch| at batch 1 and 3, in the artifact's runtime."""
    if target == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
        run = lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]  # noqa: E731
    else:
        import openvino

        compiled = openvino.Core().compile_model(str(model_file), "CPU")
        run = lambda x: compiled(x)[0]  # noqa: E731
    errors = []
    for batch in (1, 3):
        x = torch.randn(batch, 3, *SIZE, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(x).numpy()
        errors.append(float(np.abs(run(x.numpy()) - expected).max() / np.abs(expected).max()))
    return errors


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_the_python_api_converts_generic_layers_with_a_dynamic_batch(net, target, tmp_path):
    result = odexport.convert(net, torch.randn(1, 3, *SIZE), target=target, output=tmp_path / "out",
                              batch="dynamic")
    manifest = result.manifest
    assert manifest["dynamic"]["batch"] and result.parity.passed
    assert [(layer["path"], layer["lowering"]) for layer in manifest["generic_layers"]] == [
        ("down", "generic"), ("depthwise", "generic")]
    assert [layer["path"] for layer in manifest["odconv_layers"]] == ["odconv"]
    assert any("generic path" in note for note in manifest["notes"])
    assert all(error < 1e-4 for error in relative_errors(result.model_file, net, target))


def test_the_cli_converts_and_inspects_generic_layers(net, tmp_path):
    path = tmp_path / "pool_gated.pt"
    torch.save(net, path)
    listed = run_cli("inspect", path, "--unsafe-pickle", "--imgsz", "20,24", "--json")
    assert listed.exit_code == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert [layer["path"] for layer in found["generic"]] == GENERIC and found["unrecognised"] == []
    assert [layer["adapter"] for layer in found["recognised"]] == ["official"]
    shown = run_cli("inspect", path, "--unsafe-pickle", "--imgsz", "20,24")
    assert "2 taken by the generic path" in shown.stdout and "not recognised" not in shown.stdout

    for target in ("onnx", "openvino"):
        converted = run_cli("convert", path, "--unsafe-pickle", "--imgsz", "20,24", "--target", target,
                            "--batch", "dynamic", "-o", tmp_path / target)
        assert converted.exit_code == 0, converted.stderr
        manifest = json.loads((tmp_path / target / "manifest.json").read_text())
        assert [layer["path"] for layer in manifest["generic_layers"]] == GENERIC
        assert manifest["parity"]["passed"] and manifest["dynamic"]["batch"]
        assert all(error < 1e-4 for error in relative_errors(tmp_path / target / manifest["files"][0], net, target))
    onnx_listing = run_cli("inspect", tmp_path / "onnx" / "model.onnx", "--json")
    layers = {layer["path"]: layer["lowering"] for layer in json.loads(onnx_listing.stdout)["layers"]}
    assert layers == {"odconv": None, "down": "generic", "depthwise": "generic"}


def test_a_dynamic_size_export_stays_exact_at_another_size(net, tmp_path):
    result = odexport.convert(net, torch.randn(1, 3, *SIZE), target="onnx", dynamic_size=True, batch="dynamic",
                              output=tmp_path / "out")
    assert result.parity.passed and result.manifest["dynamic"] == {"batch": True, "size": True}


def test_the_tests_mixture_conv_that_used_to_be_refused_now_converts(tmp_path):
    model = randomize(NetWithUnknownDynamicConv(), seed=0)
    result = odexport.convert(model, torch.randn(1, 3, 16, 16), target="onnx", output=tmp_path / "out")
    assert result.parity.passed and [layer["path"] for layer in result.manifest["generic_layers"]] == ["mix"]


def test_a_loop_over_the_samples_is_refused_by_name_from_python_and_the_cli(tmp_path):
    model = randomize(NetWithSampleLoopConv(), seed=0)
    with pytest.raises(InputError, match="generic path cannot export with a dynamic batch: mix") as refused:
        odexport.convert(model, torch.randn(1, 3, 16, 16), target="onnx", output=tmp_path / "out")
    assert "loop over the samples" in refused.value.message and "docs/adapters.md" in refused.value.hint
    assert not (tmp_path / "out").exists()

    path = tmp_path / "loop.pt"
    torch.save(model, path)
    listed = run_cli("inspect", path, "--unsafe-pickle", "--imgsz", "16")
    assert listed.exit_code == 0 and "1 not recognised" in listed.stdout and "loop over the samples" in listed.stdout
    result = run_cli("convert", path, "--unsafe-pickle", "--imgsz", "16", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "mix" in result.stderr and "docs/adapters.md" in result.stderr
    assert not (tmp_path / "out").exists()
