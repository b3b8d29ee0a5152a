"""The custom-op lowering: one ai.odexport::ODConv2d node per layer, its function body in ONNX Runtime and
(inlined) in OpenVINO, the OpenVINO conversion extension, and a zoo model end to end."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import onnx
import openvino as ov
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from odexport.conversion import convert_model
from odexport.export import export_onnx
from odexport.exporters import EXPORTERS, export_options
from odexport.lowering import get_lowering
from odexport.adapters import AdapterOptions, find_adapter
from odexport.lowering.custom_op import DOMAIN, DOMAIN_VERSION, OP_TYPE, attach_function, node_attributes
from odexport.models import create_model, randomize_
from odexport.odconv import describe_official, reference_forward
from odexport.backends.custom_op import inline_odconv_functions
from odexport.backends.openvino.extension import odconv_conversion_extension
from odexport.rewrite import find_odconv_layers
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from odexport.backends.openvino import OpenVINORunner
from strategies import LayerCase, build_layer, layer_cases
from test_parity import assert_close
from variants import randomize
from variants.condconv import CondConv2d

LOWERING = get_lowering("custom-op")
# Grouped, k=3, stride 2, four kernels: every attention present.
GROUPED = LayerCase(6, 9, 3, 2, 1, 1, 3, 4, 0.25, 1.0, 2, 11, 9, 7)


def export_layer(spec, x: torch.Tensor, path, exporter: str | None = None) -> onnx.ModelProto:
    """Export one lowered layer with symbolic batch, height and width; returns the saved model."""
    export_onnx(LOWERING.build(spec), path, x, dynamic_batch=True, dynamic_size=True, finalize=LOWERING.finalize_onnx,
                options=export_options(exporter))
    return onnx.load(path)


def openvino_inlined(model: onnx.ModelProto, path) -> ov.CompiledModel:
    """OpenVINO on the inlined function bodies, with no extension registered."""
    onnx.save(inline_odconv_functions(model), path)
    return ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


@pytest.mark.parametrize("exporter", list(EXPORTERS))
def test_one_layer_exports_as_one_node_with_its_function(tmp_path, exporter):
    """The TorchScript exporter traces an autograd.Function's symbolic, torch.export keeps a torch.library
    operator that onnxscript writes: the same node either way, with a body at the model's opset."""
    layer, x = build_layer(GROUPED)
    spec = describe_official(layer)
    model = export_layer(spec, x, tmp_path / "layer.onnx", exporter)

    (node,) = model.graph.node
    assert (node.domain, node.op_type) == (DOMAIN, OP_TYPE)
    assert {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} == node_attributes(spec)
    assert len(node.input) == 6  # no bias
    assert {i.name for i in model.graph.initializer} == set(node.input[1:])
    assert [(f.domain, f.name) for f in model.functions] == [(DOMAIN, OP_TYPE)]
    imports = {o.domain: o.version for o in model.opset_import}
    assert imports[DOMAIN] == DOMAIN_VERSION
    assert {o.domain: o.version for o in model.functions[0].opset_import}[""] == imports[""]
    assert [d.dim_param for d in model.graph.output[0].type.tensor_type.shape.dim][0] == "batch"
    onnx.checker.check_model(model, full_check=True)
    (actual,) = OnnxRuntimeRunner(tmp_path / "layer.onnx").infer({"input": x.numpy()}).values()
    assert_close(actual, reference_forward(spec, x).numpy(), f"ODConv2d ({exporter}) in onnxruntime")
    assert len(attach_function(model).functions) == 1  # finalizing twice keeps one body


def test_folded_output_affine_becomes_scaled_weights_and_a_bias_input(tmp_path):
    layer, x = build_layer(GROUPED)
    generator = torch.Generator().manual_seed(1)
    spec = dataclasses.replace(describe_official(layer), out_scale=torch.rand(9, generator=generator) + 0.5,
                               out_bias=torch.randn(9, generator=generator))
    model = export_layer(spec, x, tmp_path / "affine.onnx")
    (node,) = model.graph.node
    assert len(node.input) == 7

    expected = reference_forward(spec, x).numpy()
    compiled = openvino_inlined(model, tmp_path / "inlined.onnx")
    outputs = {
        "onnxruntime": OnnxRuntimeRunner(tmp_path / "affine.onnx").infer({"input": x.numpy()})["logits"],
        "openvino extension": OpenVINORunner(tmp_path / "affine.onnx").infer({"input": x.numpy()})["logits"],
        "openvino inlined": compiled(x.numpy())[0],
    }
    for name, actual in outputs.items():
        assert_close(actual, expected, name)


@pytest.mark.parametrize("exporter", list(EXPORTERS))
def test_sigmoid_kernel_attention_is_an_attribute_every_route_honours(tmp_path, exporter):
    """CondConv's sigmoid routing: kernel_activation=1 on the node; the function body (ONNX Runtime,
    inlined in OpenVINO) and the extension all use it, at batch 1 and 3."""
    layer = randomize(CondConv2d(4, 6, 3, 2, 1, groups=2, num_experts=3), seed=0)
    spec = find_adapter(layer).describe(layer, AdapterOptions())
    x = torch.randn(1, 4, 11, 9, generator=torch.Generator().manual_seed(1))
    model = export_layer(spec, x, tmp_path / "condconv.onnx", exporter)
    (node,) = model.graph.node
    assert {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}["kernel_activation"] == 1
    onnx.checker.check_model(model, full_check=True)

    inlined = openvino_inlined(model, tmp_path / "inlined.onnx")
    runners = {"onnxruntime": OnnxRuntimeRunner(tmp_path / "condconv.onnx").infer,
               "openvino extension": OpenVINORunner(tmp_path / "condconv.onnx").infer,
               "openvino inlined": lambda feed: {"y": inlined(feed["input"])[0]}}
    for batch in (1, 3):
        sample = torch.randn(batch, 4, 11, 9, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = layer(sample).numpy()
        for name, infer in runners.items():
            (actual,) = infer({"input": sample.numpy()}).values()
            assert_close(actual, expected, f"{name}, batch {batch}")


def test_openvino_needs_the_extension_or_inlining(tmp_path):
    layer, x = build_layer(GROUPED)
    export_layer(describe_official(layer), x, tmp_path / "layer.onnx")
    with pytest.raises(Exception, match="No conversion rule found"):
        ov.Core().read_model(str(tmp_path / "layer.onnx"))
    converted = ov.convert_model(str(tmp_path / "layer.onnx"), extension=[odconv_conversion_extension()])
    assert converted.get_parameters()[0].get_partial_shape().to_string() == "[?,6,?,?]"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=layer_cases())
def test_function_body_and_extension_match_reference(case, tmp_path):
    """ONNX Runtime (function body), OpenVINO (extension) and OpenVINO (inlined body) at batch 1 and 3 and
    a second input size, from one export."""
    layer, x = build_layer(case)
    path = tmp_path / f"{case.seed}.onnx"
    model = export_layer(describe_official(layer), x, path)
    inlined = openvino_inlined(model, tmp_path / f"{case.seed}.inlined.onnx")
    runners = {"onnxruntime": OnnxRuntimeRunner(path).infer, "openvino extension": OpenVINORunner(path).infer,
               "openvino inlined": lambda feed: {"y": inlined(feed["input"])[0]}}
    for batch, extra in ((1, 0), (3, 2)):
        sample = torch.randn(batch, case.in_channels, case.height + extra, case.width + 2 * extra)
        with torch.no_grad():
            expected = layer(sample).numpy()
        for name, infer in runners.items():
            (actual,) = infer({"input": sample.numpy()}).values()
            assert_close(actual, expected, f"{name}, input {tuple(sample.shape)}")


@pytest.fixture(scope="module")
def zoo_model():
    return randomize_(create_model("od_mobilenetv2_050", kernel_num=4, num_classes=10), seed=0).eval()


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_zoo_model_converts_with_parity(zoo_model, tmp_path, target):
    result = convert_model(zoo_model, target=target, output=tmp_path / "out", imgsz=48, lowering="custom-op")
    assert result.parity.passed, result.parity.summary()
    assert result.parity.batch_sizes == (1, 3)
    if target != "onnx":
        return
    model = onnx.load(result.model_file)
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops[OP_TYPE] == len(find_odconv_layers(zoo_model))
    # The attention math lives only inside the function: none of its ops remain in the main graph.
    assert not set(ops) & {"ReduceMean", "Sigmoid", "Softmax", "MatMul"}, ops
    assert len(model.functions) == 1

    # The other OpenVINO route: inline the functions, no extension.
    samples = np.random.default_rng(0).random((3, 3, 48, 48), dtype=np.float32)
    compiled = openvino_inlined(model, tmp_path / "inlined.onnx")
    with torch.no_grad():
        expected = zoo_model(torch.from_numpy(samples)).numpy()
    assert_close(compiled(samples)[0], expected, "od_mobilenetv2_050 inlined in OpenVINO")
