"""Each inference-time fold leaves the eval output unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from odexport.adapters import AdapterOptions
from odexport.export import export_onnx
from odexport.lowering import get_lowering, list_lowerings
from odexport.models import create_model, randomize_
from odexport.odconv import (
    describe_official,
    drop_identity_attentions,
    fold_batchnorm,
    fold_following_batchnorm,
    fold_temperature,
    merge_heads,
    reference_forward,
)
from odexport.rewrite import lower_model
from odexport.backends.onnxruntime import OnnxRuntimeRunner
from strategies import LayerCase, build_layer
from variants import randomize
from variants.condconv import CondConv2d
from variants.dyconv import Dynamic_conv2d
from variants.linear_heads import LinearHeadODConv

CASE = LayerCase(in_channels=12, out_channels=10, kernel_size=3, stride=2, padding=1, dilation=1, groups=2,
                 kernel_num=3, reduction=0.25, temperature=2.5, batch=3, height=11, width=9, seed=7)


def random_batchnorm(channels: int, seed: int) -> nn.BatchNorm2d:
    generator = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(channels, generator=generator) + 0.5)
        bn.bias.copy_(torch.randn(channels, generator=generator))
        bn.running_mean.copy_(torch.randn(channels, generator=generator))
        bn.running_var.copy_(torch.rand(channels, generator=generator) + 0.3)
    return bn


def test_fold_batchnorm_into_a_linear_map():
    weight, bias = torch.randn(6, 5), torch.randn(6)
    bn = random_batchnorm(6, seed=1)
    x = torch.randn(4, 5)
    expected = bn((x @ weight.T + bias)[:, :, None, None])[:, :, 0, 0]
    folded_weight, folded_bias = fold_batchnorm(weight, bias, bn)
    torch.testing.assert_close(x @ folded_weight.T + folded_bias, expected)


def test_fold_temperature_into_the_heads():
    weight, bias, hidden = torch.randn(7, 5), torch.randn(7), torch.randn(3, 5)
    folded_weight, folded_bias = fold_temperature(weight, bias, 3.0)
    torch.testing.assert_close(torch.sigmoid(hidden @ folded_weight.T + folded_bias),
                               torch.sigmoid((hidden @ weight.T + bias) / 3.0))


def test_merge_heads_keeps_each_head_and_its_rows():
    heads = [nn.Conv2d(5, 4, 1), None, nn.Conv2d(5, 9, 1), nn.Conv2d(5, 3, 1)]
    hidden = torch.randn(2, 5)
    weight, bias, sizes = merge_heads(heads)
    assert sizes == (4, 0, 9, 3)
    merged = hidden @ weight.T + bias
    separate = torch.cat([h(hidden[:, :, None, None])[:, :, 0, 0] for h in heads if h is not None], dim=1)
    torch.testing.assert_close(merged, separate)


def test_a_single_kernel_softmax_is_dropped_without_changing_the_output():
    """Forks keep a kernel head even for kernel_num 1; its softmax over one kernel is identically 1."""
    layer, x = build_layer(dataclasses.replace(CASE, kernel_num=1))
    layer.attention.kernel_fc = nn.Conv2d(layer.attention.fc.out_channels, 1, 1)
    assert drop_identity_attentions([1, 2, 3, layer.attention.kernel_fc], kernel_num=1)[3] is None
    spec = describe_official(layer)
    assert spec.head_sizes[3] == 0
    with torch.no_grad():
        torch.testing.assert_close(reference_forward(spec, x), layer(x), rtol=1e-5, atol=1e-6)


def test_describe_folds_attention_batchnorm_and_temperature():
    layer, x = build_layer(CASE)
    spec = describe_official(layer)
    assert spec.head_sizes == (12, 10, 9, 3)
    with torch.no_grad():
        torch.testing.assert_close(reference_forward(spec, x), layer(x), rtol=1e-5, atol=1e-6)


def test_fold_following_batchnorm_into_kernels_and_bias():
    layer, x = build_layer(CASE)
    bn = random_batchnorm(CASE.out_channels, seed=3)
    folded = fold_following_batchnorm(describe_official(layer), bn)
    assert folded.out_bias is not None and folded.out_scale is None
    with torch.no_grad():
        torch.testing.assert_close(reference_forward(folded, x), bn(layer(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["od_resnet18", "od_mobilenetv2_050"])
def test_lower_model_folds_every_batchnorm_that_follows_an_odconv(arch):
    model = randomize_(create_model(arch, kernel_num=2, num_classes=10), seed=0).eval()
    lowered, layers = lower_model(model, "decomposed")
    assert all(layer.folded_batchnorm is not None for layer in layers)
    for layer in layers:
        assert isinstance(lowered.get_submodule(layer.folded_batchnorm), nn.Identity)
        assert isinstance(model.get_submodule(layer.folded_batchnorm), nn.BatchNorm2d)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(lowered(x), expected, rtol=0, atol=1e-4 * float(expected.abs().max()))


def assert_close(actual, expected, what: str) -> None:
    """Equal up to float32 rounding, relative to the largest output."""
    error = float(np.abs(actual - expected).max())
    assert error <= 1e-5 * float(np.abs(expected).max()), f"{what}: max abs error {error:.3g}"


class ThenBatchNorm(nn.Module):
    """A layer and the BatchNorm on its output: what lower_model folds."""

    def __init__(self, layer: nn.Module, channels: int) -> None:
        super().__init__()
        self.layer = layer
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.layer(x))


# Layers with a bias per kernel ([K, out]), each followed by a BatchNorm: a softmax kernel attention and
# no filter attention (DyConv), a sigmoid one (CondConv: the weights do not sum to 1), and every
# attention (a fork: the filter attention multiplies the kernel bias, not the BatchNorm's shift).
KERNEL_BIAS_LAYERS = {
    "dyconv": lambda: Dynamic_conv2d(4, 6, 3, groups=2, K=3, temperature=4.0),
    "condconv": lambda: CondConv2d(4, 6, 3, 2, 1, groups=2, num_experts=3),
    "linear-heads": lambda: LinearHeadODConv(4, 6, 3, 2, 1, groups=2),
}


def kernel_bias_model(name: str) -> nn.Module:
    """x: [3, 4, 12, 14] (batch 3: the fork applies its attention BatchNorm from batch 2 on)."""
    model = randomize(ThenBatchNorm(KERNEL_BIAS_LAYERS[name](), 6), seed=11)
    with torch.no_grad():  # a BatchNorm far from the identity: scales well away from 1, shifts of several units
        model.bn.weight.copy_(torch.linspace(-2.0, 3.0, 6))
        model.bn.bias.copy_(torch.linspace(4.0, -3.0, 6))
    return model


@pytest.mark.parametrize("layer", sorted(KERNEL_BIAS_LAYERS))
def test_fold_following_batchnorm_scales_the_kernel_bias_and_shifts_the_output(layer):
    model = kernel_bias_model(layer)
    (found,) = lower_model(model, "decomposed", options=AdapterOptions("apply"))[1]
    assert found.spec.kernel_bias is not None and found.folded_batchnorm == "bn"
    x = torch.randn(3, 4, 12, 14, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert_close(reference_forward(found.spec, x).numpy(), model(x).numpy(), f"{layer} folded with its BatchNorm")


@pytest.mark.parametrize("lowering", list_lowerings())
@pytest.mark.parametrize("layer", sorted(KERNEL_BIAS_LAYERS))
def test_every_lowering_of_a_kernel_bias_layer_with_its_batchnorm_matches_pytorch(layer, lowering, tmp_path):
    """The fold, and each lowering's own handling of the folded kernel bias, in PyTorch and in ONNX Runtime."""
    model = kernel_bias_model(layer)
    lowered, (found,) = lower_model(model, lowering, options=AdapterOptions("apply"))
    assert found.folded_batchnorm == "bn"
    x = torch.randn(3, 4, 12, 14, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
        assert_close(lowered(x).numpy(), expected, f"{layer} with {lowering} in PyTorch")
    graph = export_onnx(lowered, tmp_path / "model.onnx", x, dynamic_batch=get_lowering(lowering).dynamic_batch,
                        finalize=get_lowering(lowering).finalize_onnx)
    (actual,) = OnnxRuntimeRunner(graph.path).infer({graph.input_name: x.numpy()}).values()
    assert_close(actual, expected, f"{layer} with {lowering} in ONNX Runtime")
