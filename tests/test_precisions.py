"""Every target x precision x lowering meets its tolerance preset; IR metadata, precision hints and the OVMS
layout read back; int8 artifacts run the ODConv layers' convolutions on int8 weights."""

from __future__ import annotations

import json

import numpy as np
import onnx
import openvino as ov
import pytest

from odexport.calibration import calibration_samples
from odexport.conversion import convert_model
from odexport.errors import InputError
from odexport.inputs import IMAGENET
from odexport.backends import get_target, list_targets
from odexport.backends.openvino import OpenVINORunner
from odexport.backends.openvino.ir import read_model_info
from odexport.inspection import onnx_scope
from odexport.precisions import get_precision, list_precisions

LOWERINGS = ("decomposed", "custom-op", "dynamic-weight")
ODCONV_LAYERS = ("conv1", "dw", "pw")
CASES = [(target, precision, lowering) for target in list_targets() for precision in get_target(target).precisions
         for lowering in LOWERINGS
         # the onnx target shares onnxruntime's writer: one lowering is enough there
         if target != "onnx" or lowering == "decomposed"]


@pytest.fixture(scope="session")
def digits():
    from digits import train_tiny_digits

    return train_tiny_digits()


def convert(digits, tmp_path, target, precision, lowering="decomposed", **options):
    return convert_model(digits.model, target=target, output=tmp_path / "out", imgsz=32, lowering=lowering,
                         precision=precision, calibration=digits.train, calibration_size=16, **options)


def held_out_agreement(digits, result) -> float:
    import torch

    runner = get_target(result.manifest["target"]).runner(result.model_file)
    batch = result.manifest["inputs"][0]["shape"][0]
    batch = batch if isinstance(batch, int) else len(digits.test)
    logits = np.concatenate([runner.infer({"input": digits.test[i:i + batch]})["logits"]
                             for i in range(0, len(digits.test), batch)])
    with torch.no_grad():
        reference = digits.model(torch.from_numpy(digits.test)).numpy()
    return float(np.mean(logits.argmax(1) == reference.argmax(1)))


@pytest.mark.parametrize(("target", "precision", "lowering"), CASES)
def test_every_target_precision_and_lowering_meets_its_preset(digits, tmp_path, target, precision, lowering):
    result = convert(digits, tmp_path, target, precision, lowering)

    assert result.parity.passed, result.parity.summary()
    assert result.parity.tolerance == get_precision(precision).tolerance
    assert result.manifest["precision"] == precision
    # Beyond the parity photographs: the same classes as PyTorch on held-out digits.
    assert held_out_agreement(digits, result) >= (0.95 if precision == "int8" else 0.99)


def test_every_precision_has_a_preset_and_a_target():
    assert all(get_precision(p).tolerance.name == p for p in list_precisions())
    assert all(any(p in get_target(t).precisions for t in list_targets()) for p in list_precisions())
    assert all(get_precision(p).tolerance.min_top1_agreement > 0 for p in list_precisions() if p != "fp32")


def _onnx_int8_convolutions(path) -> list[str]:
    """Conv nodes whose weight is DequantizeLinear(int8 initializer) (QDQ, as quantized), and QLinearConv
    nodes with an int8 weight initializer (what ONNX Runtime's offline optimization fuses QDQ into)."""
    graph = onnx.load(str(path)).graph
    int8 = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8}
    return [n.name for n in graph.node if (n.op_type == "Conv" and n.input[1] in dequantized)
            or (n.op_type == "QLinearConv" and n.input[3] in int8)]


def _openvino_int8_convolutions(path) -> list[str]:
    """Convolutions whose weight is an i8 Constant (Convert -> Subtract/Multiply on the way)."""
    names = []
    for op in ov.Core().read_model(str(path)).get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution"):
            continue
        node = op.input_value(1).get_node()
        while node.get_type_name() in ("Convert", "Subtract", "Multiply", "Reshape"):
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Constant" and node.get_output_element_type(0) == ov.Type.i8:
            names.append(op.get_friendly_name())
    return names


COUNTERS = {"onnx": _onnx_int8_convolutions, "onnxruntime": _onnx_int8_convolutions,
            "openvino": _openvino_int8_convolutions}


@pytest.mark.parametrize("target", sorted(COUNTERS))
def test_int8_runs_every_constant_weight_odconv_convolution_on_int8_weights(digits, tmp_path, target):
    quantized = COUNTERS[target](convert(digits, tmp_path, target, "int8").model_file)

    per_layer = {layer: sum(name.startswith(onnx_scope(layer)) for name in quantized) for layer in ODCONV_LAYERS}
    assert all(count >= 1 for count in per_layer.values()), per_layer
    assert len(quantized) == sum(per_layer.values()) + 1  # and the stem's plain convolution


# The optimized onnxruntime artifact and the IR: in the plain onnx one, a kernel that folds to a constant
# only during ONNX Runtime's optimization (pw below) is still quantized as an activation.
@pytest.mark.parametrize("target", ["onnxruntime", "openvino"])
def test_int8_reports_the_odconv_layers_left_in_float_and_why(digits, tmp_path, target):
    result = convert(digits, tmp_path, target, "int8", lowering="dynamic-weight")
    quantization = result.manifest["quantization"]
    quantized = COUNTERS[target](result.model_file)

    left = {layer["path"]: layer["reason"] for layer in quantization["odconv_layers_float"]}
    # conv1 and dw aggregate their kernels per sample; pw has one kernel and no spatial attention, so its
    # kernel folds to a constant at export and is quantized.
    assert set(left) == {"conv1", "dw"}
    assert all("run time" in reason for reason in left.values())
    assert not [name for name in quantized if name.startswith(("/conv1/", "/dw/"))]
    assert [layer["path"] for layer in quantization["odconv_layers_quantized"]] == ["pw"]
    assert quantization["quantized_convolutions"] == len(quantized)
    assert quantization["calibration_samples"] == 16


def test_openvino_metadata_precision_hint_and_ovms_layout_read_back(digits, tmp_path):
    result = convert(digits, tmp_path, "openvino", "bf16", layout="ovms")
    out = result.output_dir

    assert result.model_file == out / "model" / "1" / "model.xml"
    assert (out / "model" / "1" / "model.bin").is_file()
    assert result.manifest["files"][0] == "model/1/model.xml"
    config = json.loads((out / "config.json").read_text())["model_config_list"][0]["config"]
    assert config["name"] == "model" and config["plugin_config"] == {"INFERENCE_PRECISION_HINT": "bf16"}
    info = read_model_info(result.model_file)
    assert info["odexport.precision"] == "bf16"
    assert info["odexport.layout"] == "NCHW"
    assert json.loads(info["odexport.mean"]) == list(IMAGENET.mean)
    assert json.loads(info["odexport.std"]) == list(IMAGENET.std)
    assert info["odexport.num_classes"] == "10"
    assert info["odexport.lowering"] == "decomposed"
    assert info["odexport.version"] == result.manifest["versions"]["odexport"]
    # A CPU without bf16 arithmetic (AVX2 only) runs the hint in f32; the file still asks for bf16.
    computes_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert OpenVINORunner(result.model_file).inference_precision == ("bf16" if computes_bf16 else "f32")


@pytest.mark.parametrize(("precision", "weights", "computed_in"), [("fp32", "f32", "f32"), ("fp16", "f16", "f32")])
def test_openvino_stores_weights_and_computes_as_the_precision_says(digits, tmp_path, precision, weights, computed_in):
    result = convert(digits, tmp_path, "openvino", precision)
    model = ov.Core().read_model(str(result.model_file))
    big_constants = {op.get_output_element_type(0).get_type_name() for op in model.get_ordered_ops()
                     if op.get_type_name() == "Constant" and op.get_output_element_type(0).is_real()
                     and op.get_output_size() and np.prod(list(op.get_output_shape(0))) > 64}
    assert big_constants == {weights}
    # Pinned even on CPUs where OpenVINO would otherwise pick bf16 for an f32 model.
    assert OpenVINORunner(result.model_file).inference_precision == computed_in


def test_onnx_fp16_keeps_float32_inputs_and_outputs_with_float16_weights(digits, tmp_path):
    model = onnx.load(str(convert(digits, tmp_path, "onnxruntime", "fp16").model_file))
    io_types = {value.type.tensor_type.elem_type for value in [*model.graph.input, *model.graph.output]}
    assert io_types == {onnx.TensorProto.FLOAT}
    assert {i.data_type for i in model.graph.initializer if len(i.dims) == 4} == {onnx.TensorProto.FLOAT16}


@pytest.mark.parametrize(("target", "precision", "options", "message"), [
    ("onnxruntime", "bf16", {}, "does not write bf16"),
    ("openvino", "int4", {}, "unknown precision"),
    ("onnx", "fp32", {"layout": "ovms"}, "has no 'ovms' layout"),
    ("openvino", "int8", {"calibration": None}, "needs calibration images"),
])
def test_bad_precision_requests_fail_before_any_work(digits, tmp_path, target, precision, options, message):
    with pytest.raises(InputError, match=message):
        convert_model(digits.model, target=target, output=tmp_path / "out", imgsz=32, precision=precision,
                      **({"calibration": "synthetic"} | options))
    assert list(tmp_path.iterdir()) == []


def test_calibration_samples_from_synthetic_crops_and_from_a_folder(tmp_path):
    from PIL import Image

    from odexport.inputs import bundled_photographs

    synthetic = calibration_samples("synthetic", (32, 24), count=6)
    assert synthetic.shape == (6, 3, 32, 24) and synthetic.dtype == np.float32
    assert np.array_equal(synthetic, calibration_samples("synthetic", (32, 24), count=6))
    assert len({sample.tobytes() for sample in synthetic}) == 6
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(bundled_photographs()[1][::8, ::8]).save(tmp_path / name)
    assert calibration_samples(tmp_path, (32, 32), count=2).shape == (2, 3, 32, 32)
    with pytest.raises(InputError, match="neither a folder of images nor 'synthetic'"):
        calibration_samples(tmp_path / "missing", (32, 32))



def _ir_real_constants(xml_path) -> list[dict]:
    """Every floating-point Const of an IR's xml: {name, element_type, offset, size (bytes in the .bin),
    elements}."""
    import xml.etree.ElementTree as ElementTree

    constants = []
    for layer in ElementTree.parse(xml_path).getroot().iter("layer"):
        data = layer.find("data")
        if layer.get("type") != "Const" or data.get("element_type") not in ("f64", "f32", "f16", "bf16"):
            continue
        elements = int(np.prod([int(size) for size in data.get("shape").split(",") if size]))
        constants.append({"name": layer.get("name"), "element_type": data.get("element_type"),
                          "offset": int(data.get("offset")), "size": int(data.get("size")), "elements": elements})
    return constants


@pytest.mark.parametrize("lowering", LOWERINGS)
def test_openvino_bf16_stores_every_weight_in_f32(digits, tmp_path, lowering):
    """bf16 is an inference precision: OpenVINO converts f32 weights itself, while f16-compressed ones
    would be rounded to f16 first (10 mantissa bits, a smaller range) and then to bf16."""
    result = convert(digits, tmp_path, "openvino", "bf16", lowering)
    constants = _ir_real_constants(result.model_file)
    assert {constant["element_type"] for constant in constants} == {"f32"}, constants
    assert all(constant["size"] == 4 * constant["elements"] for constant in constants)
    bin_size = result.model_file.with_suffix(".bin").stat().st_size
    assert all(constant["offset"] + constant["size"] <= bin_size for constant in constants)
    # The model's weights are among them (not only a few scalars): at least the classifier's matrix.
    assert max(constant["elements"] for constant in constants) >= digits.model.head.weight.numel()
    model = ov.Core().read_model(str(result.model_file))
    assert not [op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"
                and op.get_output_element_type(0) in (ov.Type.f16, ov.Type.bf16)]
