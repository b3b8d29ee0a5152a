"""convert's options are checked once, at the edge, before any model is read: through the Python API, a
bad value is reported instead of what reading the model would have found wrong (a damaged checkpoint, a
module holding NaN), which proves the check came first. One case per option family."""

from __future__ import annotations

import pytest
import torch

import odexport
from odexport.errors import CheckpointError, InputError
from odexport.pipeline import DEFAULT_LOWERING, ConvertOptions, convert_options
from odexport.pipeline.options import AUTO_BATCH
from strategies import tiny_od_net

# (keywords, words the error must contain): one bad value of each family of convert's options.
BAD_OPTIONS = {
    "target": ({"target": "tensorrt"}, ["unknown target 'tensorrt'"]),
    "precision": ({"precision": "fp64"}, ["unknown precision 'fp64'"]),
    "precision-for-target": ({"target": "onnx", "precision": "bf16"}, ["target onnx does not write bf16"]),
    "lowering": ({"lowering": "winograd"}, ["unknown lowering 'winograd'"]),
    "layout": ({"layout": "nested"}, ["no 'nested' layout"]),
    "imgsz": ({"imgsz": "4"}, ["too small"]),
    "batch": ({"batch": 0}, ["batch 0 is not a positive int"]),
    "batch-for-lowering": ({"batch": "dynamic", "lowering": "dynamic-weight"}, ["cannot export a dynamic batch"]),
    "memory": ({"batch": 4000, "imgsz": 4000}, ["a forward pass at batch 4000", "GB of memory"]),
    "channels": ({"channels": 0}, ["--channels 0 is not a positive count"]),
    "calibration": ({"precision": "int8"}, ["needs calibration images"]),
    "calibration-source": ({"precision": "int8", "calibration": "/no/such/folder"}, ["--calibration /no/such/folder"]),
    "calibration-size": ({"precision": "int8", "calibration": "synthetic", "calibration_size": 0},
                         ["--calibration-size 0 is not between 1 and 10000"]),
    "temperature": ({"temperature": float("nan")}, ["--temperature nan is not a positive number"]),
    "attention-batchnorm": ({"attention_batchnorm": "sometimes"}, ["'sometimes' is not one of apply, skip"]),
    "exporter": ({"exporter": "tracer"}, ["unknown exporter 'tracer'"]),
    "opset": ({"opset": 9}, ["opset 9 is outside what the torchscript exporter writes"]),
}
CASES = list(BAD_OPTIONS.values())
IDS = list(BAD_OPTIONS)


@pytest.fixture(scope="module")
def damaged_checkpoint(tmp_path_factory):
    """A checkpoint that cannot load: an option error reported instead proves the option came first."""
    path = tmp_path_factory.mktemp("damaged") / "damaged.pth.tar"
    path.write_bytes(b"PK\x03\x04" + bytes(64))
    return path


def test_the_damaged_checkpoint_alone_fails_at_load(damaged_checkpoint, tmp_path):
    with pytest.raises(CheckpointError):
        odexport.convert(damaged_checkpoint, target="onnx", imgsz=32, output=tmp_path / "out")


@pytest.mark.parametrize(("keywords", "words"), CASES, ids=IDS)
def test_a_bad_option_is_refused_before_the_checkpoint_is_read(damaged_checkpoint, tmp_path, keywords, words):
    with pytest.raises(InputError) as raised:
        odexport.convert(damaged_checkpoint, output=tmp_path / "out", **({"imgsz": 32} | keywords))
    assert not isinstance(raised.value, CheckpointError), raised.value.message
    assert all(word in raised.value.message for word in words), raised.value.message
    assert raised.value.hint and not (tmp_path / "out").exists()


def _with_nan_weights() -> torch.nn.Module:
    model = tiny_od_net()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    return model


def test_a_module_with_nan_weights_alone_fails_when_its_weights_are_read(tmp_path):
    with pytest.raises(CheckpointError, match="holds NaN"):
        odexport.convert(_with_nan_weights(), torch.randn(1, 3, 32, 32), target="onnx", output=tmp_path / "out")


# A module's example input gives its size: imgsz is not used, and the memory estimate is the example's.
MODULE_CASES = {name: case for name, case in BAD_OPTIONS.items() if name not in ("imgsz", "memory")}


@pytest.mark.parametrize(("keywords", "words"), list(MODULE_CASES.values()), ids=list(MODULE_CASES))
def test_a_bad_option_is_refused_before_a_modules_weights_are_read(tmp_path, keywords, words):
    with pytest.raises(InputError) as raised:
        odexport.convert(_with_nan_weights(), torch.randn(1, 3, 32, 32), output=tmp_path / "out", **keywords)
    assert not isinstance(raised.value, CheckpointError), raised.value.message
    assert all(word in raised.value.message for word in words), raised.value.message


def test_the_options_object_holds_what_was_resolved():
    options = convert_options(imgsz="48,40", precision="int8", target="onnxruntime", calibration="synthetic",
                              lowering="dynamic-weight", output="out")
    assert isinstance(options, ConvertOptions)
    assert options.imgsz == (48, 40) and options.quantized and options.output.name == "out"
    assert options.batch == 1  # not asked, and the lowering exports a fixed batch only
    default = convert_options(imgsz=32)
    assert default.lowering == DEFAULT_LOWERING == "auto" and default.batch == AUTO_BATCH and default.batch_chosen
    assert convert_options(imgsz=32, lowering="decomposed").batch is None  # a named dynamic-batch lowering
    assert not convert_options(imgsz=32, batch="1").batch_chosen
    assert convert_options(imgsz=32, lowering=None).lowering == DEFAULT_LOWERING
    assert convert_options(imgsz=32, batch="dynamic").batch is None and convert_options(imgsz=32, batch="8").batch == 8


def test_calibration_without_a_quantized_precision_is_a_warning_not_an_error():
    options = convert_options(imgsz=32, calibration="synthetic")
    assert options.notes == ("warning: --calibration is ignored: precision fp32 is not quantized",)


def test_an_output_asked_for_wins_over_the_default():
    assert convert_options(output="mine").with_output("default").output.name == "mine"
    assert convert_options().with_output("default").output.name == "default"
