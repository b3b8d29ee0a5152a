"""verify's layer localisation on a graph written by the torch.export-based exporter: its nodes are renamed
by module path at export (odexport.module_names), so modules find their tensors as in TorchScript graphs."""

from __future__ import annotations

import onnx
import pytest

from artifact_edits import edit_initializer, layer_initializers, scale_channel
from odexport.conversion import convert_model
from odexport.verification import verify_artifact


@pytest.fixture(scope="module")
def dynamo_artifact(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("dynamo") / "onnx"
    return convert_model(tiny_model, target="onnx", output=out, imgsz=32, verify=False, exporter="dynamo",
                         lowering="decomposed").output_dir


def test_layers_of_a_correct_dynamo_artifact_all_pass(dynamo_artifact, tiny_model):
    report = verify_artifact(dynamo_artifact, model=tiny_model, runtime="all", batch_sizes=[3], layers=True)
    assert report.passed, report.failures()
    for result in report.runtimes:
        located = result.layers
        assert located.first_divergent is None, located.layers
        checked = {layer.path: layer.reference for layer in located.layers}
        # As in the TorchScript graph (tests/verification/test_verify_api.py), but for the stem: the
        # exporter's optimiser folds the stem's BatchNorm into its Conv under the BatchNorm's name, so the
        # BatchNorm (stem.1) holds the pair's output and the Conv (stem.0) has no tensor of its own.
        assert checked == {"stem.1": "stem.1", "stem.2": "stem.2", "stem": "stem", "conv1": "bn1", "dw": "bn2",
                           "pw": "bn3", "head": "head"}
        assert located.skipped == {"folded into the layer before it": 3, "no tensor in the artifact": 1}


@pytest.mark.parametrize("layer", ["conv1", "pw"])
def test_scaled_kernel_channel_in_a_dynamo_artifact_names_the_layer(dynamo_artifact, tiny_model, copy_artifact, layer):
    artifact = copy_artifact(dynamo_artifact)
    weight = f"{layer}.stacked_weight"
    assert weight in layer_initializers(onnx.load(str(artifact / "model.onnx")), layer)
    edit_initializer(artifact / "model.onnx", weight, scale_channel)
    report = verify_artifact(artifact, model=tiny_model, batch_sizes=[6])
    assert not report.passed
    first = report.runtimes[0].layers.first_divergent
    assert first.path == layer and first.max_abs_error > first.limit
