"""convert, end to end: official checkpoints in, verified artifacts out, nothing half-written on failure."""

from __future__ import annotations

import dataclasses
import json

import onnx
import pytest
import torch

from odexport.conversion import convert_checkpoint
from odexport.errors import OutputError, ParityError
from odexport.lowering import registry
from odexport.lowering.decomposed import DecomposedODConv
from odexport.manifest import MANIFEST_FORMAT

IMGSZ = 64


@pytest.mark.parametrize(
    ("arch", "kernel_num", "target"),
    [
        ("od_resnet18", 1, "openvino"),
        ("od_resnet18", 4, "onnx"),
        ("od_mobilenetv2_050", 4, "openvino"),
        ("od_mobilenetv2_050", 1, "onnxruntime"),
        ("mobilenetv2_050", 1, "onnx"),
    ],
)
def test_convert_passes_parity_and_writes_a_complete_artifact(official_checkpoint, tmp_path, arch, kernel_num, target):
    checkpoint = official_checkpoint(arch, kernel_num=kernel_num)
    result = convert_checkpoint(checkpoint, target=target, output=tmp_path / "out", imgsz=IMGSZ)

    assert result.parity.passed, result.parity.summary()
    assert result.parity.batch_sizes == (1,)  # the default: a fixed batch of 1, said so
    files = sorted(p.name for p in result.output_dir.iterdir())
    expected = ["manifest.json", "model.bin", "model.xml"] if target == "openvino" else ["manifest.json", "model.onnx"]
    assert files == expected
    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    assert (manifest["format"], manifest["producer"]) == (MANIFEST_FORMAT, "odexport")
    assert manifest["model"]["arch"] == arch
    assert manifest["model"]["kernel_num"] == kernel_num
    assert manifest["source"]["format"] == "official-checkpoint"
    assert len(manifest["source"]["sha256"]) == 64
    assert manifest["inputs"] == [{"name": "input", "shape": [1, 3, IMGSZ, IMGSZ], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "logits", "shape": [1, 10], "dtype": "float32"}]
    assert manifest["dynamic"]["batch"] is False
    assert any("fixed at 1" in note and "--batch dynamic" in note for note in manifest["notes"])
    assert manifest["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert manifest["lowering"] == "auto"
    assert {layer["lowering"] for layer in manifest["odconv_layers"]} <= set(registry.list_lowerings())
    assert manifest["parity"]["passed"] is True
    assert set(manifest["versions"]) >= {"torch", "onnx", "onnxruntime", "openvino"}
    assert (len(manifest["odconv_layers"]) > 0) == arch.startswith("od_")
    # Nothing but the artifact is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_dynamic_batch_is_asked_for_and_then_checked_at_two_sizes(official_checkpoint, tmp_path):
    checkpoint = official_checkpoint("od_mobilenetv2_050")
    result = convert_checkpoint(checkpoint, target="onnx", output=tmp_path / "out", imgsz=IMGSZ, batch="dynamic")
    assert result.parity.passed and result.parity.batch_sizes == (1, 3), result.parity.summary()
    assert result.manifest["dynamic"]["batch"] is True and result.manifest["lowering"] == "auto"
    assert result.manifest["inputs"][0]["shape"][0] == "batch"
    assert not any("fixed at" in note for note in result.manifest["notes"])
    used = {layer["lowering"] for layer in result.manifest["odconv_layers"]}
    assert used <= {"decomposed", "depthwise-taps"}  # the forms with a dynamic batch


def test_fixed_batch_and_non_square_size(official_checkpoint, tmp_path):
    # decomposed: auto would time every layer at shapes no other test uses (20 s), and the shapes are the point.
    checkpoint = official_checkpoint("od_resnet18", kernel_num=2)
    result = convert_checkpoint(checkpoint, target="onnx", output=tmp_path / "out", imgsz="64,48", batch=2,
                                lowering="decomposed")
    assert result.parity.passed and result.parity.batch_sizes == (2,)
    graph = onnx.load(result.model_file)
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 64, 48]


@pytest.fixture
def broken_lowering():
    """A real lowering with a classic bug: flipped kernels (true convolution instead of cross-correlation)."""

    def build(spec):
        return DecomposedODConv(dataclasses.replace(spec, weight=spec.weight.flip(-1, -2)))

    registry.register_lowering("flipped-for-test", "flips kernels on purpose", dynamic_batch=True,
                               constant_weights=True)(build)
    yield "flipped-for-test"
    registry.LOWERINGS.unregister("flipped-for-test")


def test_parity_failure_leaves_no_artifact(official_checkpoint, tmp_path, broken_lowering):
    checkpoint = official_checkpoint("od_resnet18")
    with pytest.raises(ParityError) as caught:
        convert_checkpoint(checkpoint, target="onnx", output=tmp_path / "out", imgsz=IMGSZ, lowering=broken_lowering)
    assert "parity check failed on onnxruntime" in caught.value.message
    assert "exceeds the fp32 limit" in caught.value.message
    assert caught.value.exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_reconvert_replaces_an_earlier_artifact_but_never_a_foreign_directory(official_checkpoint, tmp_path):
    checkpoint = official_checkpoint("od_mobilenetv2_050")
    first = convert_checkpoint(checkpoint, target="onnx", output=tmp_path / "out", imgsz=IMGSZ, verify=False)
    assert first.parity is None
    second = convert_checkpoint(checkpoint, target="openvino", output=tmp_path / "out", imgsz=IMGSZ, verify=False)
    assert sorted(p.name for p in second.output_dir.iterdir()) == ["manifest.json", "model.bin", "model.xml"]

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="is not an odexport artifact; it was left untouched"):
        convert_checkpoint(checkpoint, target="onnx", output=foreign, imgsz=IMGSZ)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_lowered_model_leaves_the_original_untouched(official_checkpoint):
    from odexport.checkpoint import load_checkpoint
    from odexport.rewrite import lower_model

    model = load_checkpoint(official_checkpoint("od_resnet18")).model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lowered, layers = lower_model(model, "decomposed")
    assert len(layers) == 16
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.get_submodule("layer1.0.conv1")).__name__ == "ODConv2d"
    assert isinstance(lowered.get_submodule("layer1.0.conv1"), DecomposedODConv)


def test_a_reference_that_is_not_finite_is_reported_as_bad_input(tmp_path):
    from odexport.conversion import convert_model
    from odexport.errors import InputError
    from strategies import tiny_od_net

    model = tiny_od_net()
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    with pytest.raises(InputError, match="non-finite outputs"):
        convert_model(model, target="onnx", output=tmp_path / "out", imgsz=32)
    assert list(tmp_path.iterdir()) == []


def test_convert_through_the_torch_export_based_exporter_at_a_later_opset(official_checkpoint, tmp_path):
    # od_resnet18 1x and decomposed: dynamo's export time grows with the graph (od_mobilenetv2_050 took three
    # minutes, od_resnet18 4x one), and auto would export every candidate of every layer through it to time
    # them (five); auto and the kernel attention through dynamo run on TinyODNet (kernel_num 2) in
    # tests/test_exporters.py.
    checkpoint = official_checkpoint("od_resnet18", kernel_num=1)
    result = convert_checkpoint(checkpoint, target="openvino", output=tmp_path / "out", imgsz=IMGSZ,
                                exporter="dynamo", opset=20, batch="dynamic", lowering="decomposed")
    assert result.parity.passed and result.parity.batch_sizes == (1, 3), result.parity.summary()
    assert result.manifest["export"] == {"exporter": "dynamo", "opset": 20}
    assert result.manifest["inputs"] == [{"name": "input", "shape": ["batch", 3, IMGSZ, IMGSZ], "dtype": "float32"}]
    assert result.manifest["outputs"] == [{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}]
