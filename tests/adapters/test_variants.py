"""Every dynamic-convolution variant of issues 8 and 16, written from its description (tests/variants),
is recognised by structure, confirmed (its description reproduces the module), and exports with every
lowering, and with the default options at a dynamic batch, to an artifact that matches PyTorch in ONNX
Runtime and OpenVINO."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnxruntime as ort
import openvino as ov
import pytest
import torch
from torch import nn

import odexport
from odexport.adapters import AdapterOptions, resolve
from odexport.errors import ExportError
from odexport.lowering import get_lowering, list_lowerings
from odexport.odconv import reference_forward
from variants import randomize
from variants.condconv import CondConv2d
from variants.dyconv import Dynamic_conv2d
from variants.forks import OmniConv, ThirdGenODConv, UnnormalisedODConv, YoloODConv
from variants.fused import ODConvBNAct, WrappedODConv
from variants.linear_heads import LinearHeadODConv
from variants.timm_condconv import RoutedCondConv


@dataclass(frozen=True)
class Variant:
    name: str
    build: Callable[[], nn.Module]
    adapter: str  # the adapter that must claim the layer (at the layer's path)
    in_channels: int = 4
    path: str = ""
    attention_batchnorm: str | None = None
    # For a layer routed by its caller: (built module, x) -> the routing [B, n] the layer receives.
    routing: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None


VARIANTS = [
    Variant("official-in-wrapper", lambda: WrappedODConv(4, 6, 3, 2, kernel_num=3), "official", path="odconv"),
    Variant("fused-bn-act", lambda: ODConvBNAct(4, 6, 3, 1, g=2, kernel_num=3), "fused-bn-act"),
    Variant("linear-heads-short", lambda: LinearHeadODConv(4, 6, 3, 2, 1, groups=2), "linear-heads",
            attention_batchnorm="apply"),
    Variant("linear-heads-long", lambda: LinearHeadODConv(6, 6, 3, 1, 1, spelling="long"), "linear-heads", in_channels=6,
            attention_batchnorm="skip"),
    Variant("condconv", lambda: CondConv2d(4, 6, 3, 1, 1, groups=2, num_experts=3), "condconv"),
    Variant("dyconv", lambda: Dynamic_conv2d(4, 6, 3, groups=2, K=3, temperature=4.0), "dyconv"),
    Variant("condconv-routed", lambda: RoutedCondConv(4, 6, 3, 1, groups=2, num_experts=3), "condconv-routed",
            path="conv", routing=lambda module, x: module.routing(x)),
    # Issue 16: layouts seen in forks.
    Variant("yolo-bn-act", lambda: YoloODConv(4, 6, 3, 2, g=2, kernel_num=3), "fused-bn-act"),
    Variant("yolo-act", lambda: YoloODConv(4, 6, 3, 1, kernel_num=3, bn=False), "fused-bn-act"),
    Variant("attention-bn-unused", lambda: UnnormalisedODConv(4, 6, 3, 1, 1, kernel_num=3), "official"),
    Variant("third-generation", lambda: ThirdGenODConv(4, 6, 3, 2, 1, groups=2, K=3), "linear-heads",
            attention_batchnorm="apply"),
    Variant("omni-attention", lambda: OmniConv(4, 6, 3, 1, 1), "linear-heads"),
]
LOWERINGS = tuple(list_lowerings())
IMGSZ = 12


def built(variant: Variant, seed: int = 0) -> nn.Module:
    return randomize(variant.build(), seed)


def example(variant: Variant, batch: int = 1) -> torch.Tensor:
    """[batch, C_in, 12, 14]: non-square, seeded."""
    return torch.randn(batch, variant.in_channels, IMGSZ, IMGSZ + 2, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_recognised_by_structure_confirmed_and_described_exactly(variant):
    module = built(variant)
    layer = module.get_submodule(variant.path)
    resolution = resolve(layer)
    assert resolution.adapter is not None and resolution.adapter.name == variant.adapter, resolution.attempts
    assert resolution.batch_dependent == (variant.attention_batchnorm is not None)
    x = example(variant, batch=3)
    spec = resolution.describe(layer, AdapterOptions(variant.attention_batchnorm))
    routing = None if variant.routing is None else variant.routing(module, x)
    inputs = (x,) if routing is None else (x, routing)
    with torch.no_grad():
        expected = layer(*inputs) if variant.attention_batchnorm != "skip" else torch.cat(
            [layer(x[i:i + 1]) for i in range(3)])
        actual = reference_forward(spec, x, routing)
        epilogue = resolution.adapter.epilogue(layer) if resolution.adapter.epilogue else None
        if epilogue is not None:
            actual = epilogue(actual)
    error = (actual - expected).abs().max().item()
    assert error <= 1e-5 * expected.abs().max().item(), error


@pytest.mark.parametrize("lowering", LOWERINGS)
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_every_lowering_matches_pytorch_in_both_runtimes(variant, lowering, tmp_path):
    module = built(variant)
    x = example(variant)
    batch = None if get_lowering(lowering).dynamic_batch else 2
    if lowering == "custom-op" and variant.routing is not None:
        with pytest.raises(ExportError, match="given by its caller"):
            odexport.convert(module, x, target="onnx", lowering=lowering, output=tmp_path / "out")
        return
    result = odexport.convert(module, x, target="onnx", lowering=lowering, batch=batch, output=tmp_path / "out",
                              attention_batchnorm=variant.attention_batchnorm, preprocessing=None)
    assert result.parity.passed, result.parity.summary()
    (layer,) = result.manifest["odconv_layers"]
    assert (layer["path"], layer["adapter"], layer["lowering"]) == (variant.path, variant.adapter, lowering)
    report = odexport.verify(result.output_dir, module, runtime="all")
    assert [r.runtime for r in report.runtimes] == ["onnxruntime", "openvino"]
    assert report.passed, report.failures()


def pytorch_at_chosen_semantics(variant: Variant, module: nn.Module, x: torch.Tensor) -> np.ndarray:
    """What the module computes at the eval behaviour the artifact was asked to follow."""
    with torch.no_grad():
        if variant.attention_batchnorm == "apply" and len(x) == 1:
            return module(torch.cat([x, x]))[:1].numpy()
        if variant.attention_batchnorm == "skip":
            return torch.cat([module(x[i:i + 1]) for i in range(len(x))]).numpy()
        return module(x).numpy()


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_the_default_lowering_at_a_dynamic_batch_matches_pytorch_at_batch_1_and_3(variant, tmp_path):
    """Default lowering (auto), dynamic batch; the OpenVINO IR (the default target) in OpenVINO and the ONNX
    file in ONNX Runtime, fp32, within 1e-4 of PyTorch relative to the output's scale."""
    module = built(variant)
    runs = {}
    for target in ("openvino", "onnx"):
        result = odexport.convert(module, example(variant), target=target, output=tmp_path / target,
                                  batch="dynamic", attention_batchnorm=variant.attention_batchnorm)
        assert result.manifest["dynamic"]["batch"] and result.parity.passed, result.parity.summary()
        assert [(layer["path"], layer["adapter"]) for layer in result.manifest["odconv_layers"]] == [
            (variant.path, variant.adapter)]
        runs[target] = result.model_file
    session = ort.InferenceSession(str(runs["onnx"]), providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(str(runs["openvino"]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for batch in (1, 3):
        x = example(variant, batch)
        expected = pytorch_at_chosen_semantics(variant, module, x)
        outputs = {"onnxruntime": session.run(None, {session.get_inputs()[0].name: x.numpy()})[0],
                   "openvino": compiled([x.numpy()])[0]}
        for runtime, actual in outputs.items():
            relative = np.abs(actual - expected).max() / np.abs(expected).max()
            assert relative < 1e-4, (runtime, batch, relative)
