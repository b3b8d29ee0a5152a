"""Choosing PyTorch's ONNX exporter and opset: validation, the record in the manifest, and the fallback to the
torch.export-based exporter when the TorchScript one is gone."""

from __future__ import annotations

import sys

import onnx
import pytest
import torch
from typer.testing import CliRunner

from odexport.cli.app import app
from odexport.conversion import convert_model
from odexport.errors import InputError
from odexport.exporters import DEFAULT_EXPORTER, DYNAMO, EXPORTERS, TORCHSCRIPT, export_options, torchscript_unavailable


def test_default_is_the_measured_choice_at_its_lowest_opset():
    options = export_options()
    assert options.exporter == DEFAULT_EXPORTER and options.note is None
    assert options.opset == EXPORTERS[DEFAULT_EXPORTER].opsets[0]


@pytest.mark.parametrize(("exporter", "opset", "phrase"), [
    ("jit", None, "unknown exporter 'jit'"),
    (DYNAMO, 17, "opset 17 is outside what the dynamo exporter writes (18 to"),
    (TORCHSCRIPT, 21, "opset 21 is outside what the torchscript exporter writes (17 to 20)"),
])
def test_bad_exporter_or_opset_is_an_input_error_with_the_choices(exporter, opset, phrase):
    with pytest.raises(InputError) as raised:
        export_options(exporter, opset)
    assert phrase in raised.value.message and raised.value.exit_code == 2
    assert raised.value.hint


def test_names_are_case_insensitive_and_opsets_in_range_are_kept():
    assert export_options("Dynamo", 20) == export_options(DYNAMO, 20)
    assert export_options(TORCHSCRIPT, 18).opset == 18


def test_cli_refuses_a_bad_opset_before_reading_the_checkpoint(tmp_path):
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "missing.pth"), "--exporter", "dynamo",
                                      "--opset", "17"])
    assert result.exit_code == 2, result.stderr
    assert "opset 17 is outside what the dynamo exporter writes" in result.stderr
    assert "Traceback" not in result.stderr


def test_dynamo_without_onnxscript_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # what `import onnxscript` sees when it is not installed
    with pytest.raises(InputError, match="onnxscript package is not installed") as raised:
        export_options(DYNAMO)
    assert "pip install onnxscript" in raised.value.hint


@pytest.fixture
def torch_without_torchscript_exporter(monkeypatch):
    """This PyTorch as a later one will be: torch.onnx.export(dynamo=False) raises. The probe runs again."""
    export = torch.onnx.export

    def export_without_torchscript(*args, dynamo=True, **kwargs):
        if not dynamo:
            raise RuntimeError("the TorchScript-based ONNX exporter has been removed")
        return export(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export_without_torchscript)
    torchscript_unavailable.cache_clear()
    yield
    monkeypatch.undo()
    torchscript_unavailable.cache_clear()


def test_a_missing_torchscript_exporter_falls_back_to_dynamo_with_a_note(tiny_model, tmp_path,
                                                                         torch_without_torchscript_exporter):
    assert "has been removed" in torchscript_unavailable()
    options = export_options(TORCHSCRIPT, 17)  # 17 is below what dynamo writes: it takes its own default
    assert (options.exporter, options.opset) == (DYNAMO, EXPORTERS[DYNAMO].opsets[0])
    assert "torchscript exporter is not available" in options.note

    result = convert_model(tiny_model, target="onnx", output=tmp_path / "out", imgsz=32, exporter=TORCHSCRIPT)
    assert result.parity.passed, result.parity.summary()
    assert result.manifest["export"] == {"exporter": DYNAMO, "opset": EXPORTERS[DYNAMO].opsets[0]}
    assert any("exported with dynamo instead" in note for note in result.manifest["notes"])
    metadata = {p.key: p.value for p in onnx.load(result.model_file).metadata_props}
    assert metadata["odexport.exporter"] == DYNAMO


def test_this_pytorch_still_has_the_torchscript_exporter():
    """The fallback above is for later PyTorch releases; with torch 2.13 both exporters must run."""
    assert torchscript_unavailable() is None
