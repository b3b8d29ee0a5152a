"""Each inference-time fold leaves the eval output unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

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
from strategies import LayerCase, build_layer

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
