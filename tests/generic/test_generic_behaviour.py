"""Which layers the generic path takes is decided by behaviour: the batch-folding convolutions are learnt
from runs at batch 1 and 2, and a layer whose generic form does not reproduce it (eagerly at batch 1 and
2, traced at batch 1 and run at batch 3) is refused with the reason."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from odexport.generic import generic_form, probe_generic_path
from odexport.generic.layer import UnhandledLayer
from odexport.rewrite import find_unrecognised_layers
from variants import per_sample_conv, randomize
from variants.generic import NetWithPoolGatedConvs, PoolGatedMixtureConv
from variants.unrecognised import MixtureConv, SampleLoopConv


def layer_input(batch: int = 3) -> tuple[tuple, dict]:
    return (torch.randn(batch, 8, 10, 12, generator=torch.Generator().manual_seed(1)),), {}


class BatchOneShortcutConv(MixtureConv):
    """At batch 1 a plain convolution with the one kernel: a trace at batch 1 keeps that branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = torch.softmax(self.gate(x), dim=1)
        weight = torch.einsum("be,eoikl->boikl", mix, self.experts)
        if x.shape[0] == 1:
            return F.conv2d(x, weight[0], padding=1)
        return per_sample_conv(x, weight, None, 1, 1, 1, 1)


class DynamicChannelScale(nn.Module):
    """Looks dynamic (a weight beside a submodule) but scales channels per sample with no folded batch."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.pool(x).flatten(1) @ self.weight)[:, :, None, None]


@pytest.mark.parametrize("layer, folded", [
    (PoolGatedMixtureConv(8, 6, stride=2, groups=2), 1),
    (MixtureConv(8), 1),
    (DynamicChannelScale(), 0),
])
def test_the_generic_form_learns_the_folded_convolutions_and_reproduces_the_layer(layer, folded):
    layer = randomize(layer, seed=4)
    generic = generic_form(layer, layer, *layer_input())
    assert sum(generic.folds) == folded
    (x,), _ = layer_input(5)  # a batch the checks did not use
    with torch.no_grad():
        expected = layer(x)
        torch.testing.assert_close(generic(x), expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("layer, reason", [
    (SampleLoopConv(8), "1 convolution call(s) at batch 1 and 2 at batch 2 (a loop over the samples?)"),
    (BatchOneShortcutConv(8), "when traced at batch 1 and run at batch 3"),
])
def test_a_layer_the_generic_form_cannot_reproduce_is_refused_with_the_reason(layer, reason):
    layer = randomize(layer, seed=4)
    with pytest.raises(UnhandledLayer, match=reason.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        generic_form(layer, layer, *layer_input())


def test_probing_a_net_names_the_layers_taken_and_leaves_the_adapter_ones_out():
    net = randomize(NetWithPoolGatedConvs(), seed=3)
    found = find_unrecognised_layers(net)
    taken, refused = probe_generic_path(net, found, torch.zeros(1, 3, 20, 20))
    assert [(layer.path, layer.folded_convolutions) for layer in taken] == [("down", 1), ("depthwise", 1)]
    assert refused == []
    assert [layer.record()["lowering"] for layer in taken] == ["generic", "generic"]
