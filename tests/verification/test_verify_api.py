"""verify_artifact on TinyODNet artifacts, in both runtimes: what passes, what fails, and where."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from torch import nn

from artifact_edits import edit_initializer, layer_initializers, scale_channel, scale_openvino_constant
from odexport.conversion import convert_model
from odexport.errors import InputError, ParityError
from odexport.inputs import Preprocessing, bundled_photographs
from odexport.verification.junit import junit_xml
from odexport.verification import verify_artifact
from strategies import tiny_od_net


def test_correct_artifact_passes_at_every_batch_size_in_both_runtimes(tiny_artifacts, tiny_model):
    report = verify_artifact(tiny_artifacts["onnx"], model=tiny_model, runtime="all", batch_sizes=["1", "3,8"])
    assert report.passed, report.failures()
    assert report.batch_sizes == (1, 3, 8)
    assert [r.runtime for r in report.runtimes] == ["onnxruntime", "openvino"]
    for result in report.runtimes:
        (out,) = result.parity.outputs
        assert out.shape == out.reference_shape == (6 + 6 + 8, 5)  # 6 inputs, the last batch of 8 cycled
        assert out.max_abs_error <= out.limit and out.p99_abs_error <= out.max_abs_error
        assert out.cosine_similarity > 0.999999 and out.top1_agreement == 1.0
        assert result.layers is None  # passed, and layers were not asked for
    report.raise_for_failure()  # a passing report does not raise


def test_dynamic_batch_defaults_to_1_and_3_and_an_xml_to_openvino(tiny_artifacts, tiny_model):
    report = verify_artifact(tiny_artifacts["openvino"], model=tiny_model)
    assert report.passed and report.batch_sizes == (1, 3) and report.input_size == (32, 32)
    assert [r.runtime for r in report.runtimes] == ["openvino"]


def test_layers_of_a_correct_artifact_all_pass(tiny_artifacts, tiny_model):
    """Every module that finds a tensor must match it: a wrong module-to-tensor mapping shows up here."""
    report = verify_artifact(tiny_artifacts["onnx"], model=tiny_model, runtime="all", batch_sizes=[3], layers=True)
    for result in report.runtimes:
        located = result.layers
        assert located.first_divergent is None, located.layers
        checked = {layer.path: layer.reference for layer in located.layers}
        # Each ODConv layer is compared with the BatchNorm convert folded into it; the stem's Conv with the
        # BatchNorm the exporter folded.
        assert checked == {"stem.0": "stem.1", "stem.2": "stem.2", "stem": "stem", "conv1": "bn1", "dw": "bn2",
                           "pw": "bn3", "head": "head"}
        assert located.skipped == {"folded into the layer before it": 4}
        assert [layer.path for layer in located.layers][-1] == "head"  # execution order


@pytest.mark.parametrize("layer", ["conv1", "dw", "pw"])
def test_scaled_kernel_channel_in_onnx_names_the_layer(tiny_artifacts, tiny_model, copy_artifact, layer):
    artifact = copy_artifact(tiny_artifacts["onnx"])
    weight = f"{layer}.stacked_weight"  # [kernel_num * out, in / groups * k * k, 1, 1]
    assert weight in layer_initializers(onnx.load(str(artifact / "model.onnx")), layer)
    edit_initializer(artifact / "model.onnx", weight, scale_channel)
    report = verify_artifact(artifact, model=tiny_model, batch_sizes=[6])
    assert not report.passed
    first = report.runtimes[0].layers.first_divergent
    assert first.path == layer and first.max_abs_error > first.limit
    assert f"first divergent layer {layer}" in report.failures()[0]
    with pytest.raises(ParityError) as raised:
        report.raise_for_failure()
    assert raised.value.exit_code == 1 and layer in raised.value.message


def test_scaled_constant_in_openvino_bin_names_the_layer(tiny_artifacts, tiny_model, copy_artifact):
    artifact = copy_artifact(tiny_artifacts["openvino"])
    assert scale_openvino_constant(artifact / "model.xml", "conv1") == "conv1.stacked_weight"
    report = verify_artifact(artifact, model=tiny_model, batch_sizes=[6])
    assert not report.passed and report.runtimes[0].runtime == "openvino"
    located = report.runtimes[0].layers
    assert located.first_divergent.path == "conv1" and located.first_divergent.reference == "bn1"
    # The layers before it still match: the damage is in conv1, not upstream.
    assert [layer.path for layer in located.layers if layer.passed][:3] == ["stem.0", "stem.2", "stem"]


class Normalize(nn.Module):
    """Input normalisation baked into the model: x in [0, 1] -> (x - mean) / std."""

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class WithNormalization(nn.Module):
    def __init__(self, mean, std, net: nn.Module) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def test_wrong_baked_in_normalisation_names_the_normalize_layer(tmp_path):
    """The deployed model was built with the ImageNet mean in BGR order; training used RGB."""
    net = tiny_od_net()
    rgb, bgr, std = (0.485, 0.456, 0.406), (0.406, 0.456, 0.485), (0.229, 0.224, 0.225)
    unit = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # the model normalises itself
    artifact = convert_model(WithNormalization(bgr, std, net).eval(), target="onnx", output=tmp_path / "bgr",
                             imgsz=32, preprocessing=unit, verify=False, lowering="decomposed").output_dir
    report = verify_artifact(artifact, model=WithNormalization(rgb, std, net).eval(), runtime="all", batch_sizes=[6])
    assert not report.passed
    for result in report.runtimes:
        assert result.layers.first_divergent.path == "normalize", result.layers.layers[:2]


def test_user_images_are_added_with_the_manifest_preprocessing(tiny_artifacts, tiny_model, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    astronaut = bundled_photographs()[0]
    Image.fromarray(astronaut).convert("L").save(images / "camera.png")  # grayscale
    Image.fromarray(np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])).save(images / "astronaut.png")
    (images / "notes.txt").write_text("not an image")
    report = verify_artifact(tiny_artifacts["onnx"], model=tiny_model, images=images, batch_sizes=[8])
    assert report.passed and report.samples == {"photographs": 4, "random": 2, "images": 2}
    assert report.runtimes[0].parity.samples == 8

    for image in ("camera.png", "astronaut.png"):
        (images / image).unlink()
    with pytest.raises(InputError, match="no images"):
        verify_artifact(tiny_artifacts["onnx"], model=tiny_model, images=images)


def test_report_is_strict_json_and_junit(tiny_artifacts, tiny_model, copy_artifact):
    artifact = copy_artifact(tiny_artifacts["onnx"])
    edit_initializer(artifact / "model.onnx", "head.weight", scale_channel)
    report = verify_artifact(artifact, model=tiny_model, batch_sizes=[6])
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["passed"] is False and data["runtimes"][0]["layers"]["first_divergent"]["path"] == "head"
    output = data["runtimes"][0]["parity"]["outputs"][0]
    for key in ("max_abs_error", "mean_abs_error", "p99_abs_error", "max_rel_error", "mean_rel_error",
                "p99_rel_error", "cosine_similarity", "top1_agreement", "top5_agreement", "shape", "reference_shape"):
        assert key in output
    root = junit_xml(report).getroot()
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and "max abs error" in failure.get("message")
    assert "first divergent layer: head" in failure.text


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"runtime": "tensorrt"}, "unknown runtime"),
        ({"precision": "int3"}, "unknown precision"),
        ({"atol": -1.0}, "--atol"),
        ({"batch_sizes": ["0"]}, "batch size"),
        ({"batch_sizes": ["two"]}, "batch size"),
        ({"imgsz": "big"}, "big"),
    ],
)
def test_bad_options_are_input_errors(tiny_artifacts, tiny_model, kwargs, phrase):
    with pytest.raises(InputError, match=phrase):
        verify_artifact(tiny_artifacts["onnx"], model=tiny_model, **kwargs)


def test_an_xml_cannot_run_in_onnxruntime(tiny_artifacts, tiny_model):
    with pytest.raises(InputError, match="onnxruntime cannot run model.xml"):
        verify_artifact(tiny_artifacts["openvino"] / "model.xml", model=tiny_model, runtime="onnxruntime")


def test_explicit_tolerances_replace_the_preset(tiny_artifacts, tiny_model):
    report = verify_artifact(tiny_artifacts["onnx"], model=tiny_model, batch_sizes=[6], atol=0.0, rtol=1e-12)
    assert (report.tolerance.atol, report.tolerance.rtol) == (0.0, 1e-12)
    assert not report.passed  # no runtime matches PyTorch bit for bit


def test_a_reference_with_nan_outputs_is_bad_input(tiny_artifacts):
    broken = tiny_od_net()
    with torch.no_grad():
        broken.bn3.running_var.fill_(float("nan"))
    with pytest.raises(InputError, match="non-finite"):
        verify_artifact(tiny_artifacts["onnx"], model=broken, batch_sizes=[6])
