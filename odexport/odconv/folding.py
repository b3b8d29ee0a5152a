"""Inference-time folds: each a named rewrite that leaves the layer's eval output unchanged.

describe_official applies the layer-local ones (attention BatchNorm, temperature, head merge, identity
attentions); lower_model applies fold_following_batchnorm where a BatchNorm directly consumes an ODConv.
Each is tested for equality of the math in tests/odconv/test_folding.py.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import Tensor, nn

from .spec import ODConvSpec


def fold_batchnorm(weight: Tensor, bias: Tensor | None, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Fold an eval-mode BatchNorm that follows a linear map into it.

    weight: [C, ...] (rows = the BatchNorm's channels); bias: [C] or None -> (weight', bias')
    """
    scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
    shift = bn.bias.detach() - bn.running_mean.detach() * scale
    folded_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    folded_bias = shift if bias is None else bias * scale + shift
    return folded_weight, folded_bias


def fold_temperature(weight: Tensor, bias: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """f(Wx + b) / T == f((W/T)x + b/T): the division by the temperature moves into the head."""
    return weight / temperature, bias / temperature


def drop_identity_attentions(heads: Sequence[nn.Conv2d | None], kernel_num: int) -> list[nn.Conv2d | None]:
    """Heads ordered (channel, filter, spatial, kernel); a softmax over one kernel is identically 1.

    The official code never creates such a head, but forks do; absent heads (depthwise filter, 1x1
    spatial) are already None.
    """
    heads = list(heads)
    if kernel_num == 1:
        heads[3] = None
    return heads


def merge_heads(heads: Sequence[nn.Conv2d | None]) -> tuple[Tensor, Tensor, tuple[int, int, int, int]]:
    """Stack the present 1x1 head convolutions into one matrix: one Gemm instead of four.

    -> weight [R, A], bias [R], rows per head (0 for an absent head)
    """
    present = [head for head in heads if head is not None]
    weight = torch.cat([head.weight.detach().flatten(1) for head in present])
    bias = torch.cat([head.bias.detach() for head in present])
    sizes = tuple(0 if head is None else head.out_channels for head in heads)
    return weight, bias, sizes


def fold_following_batchnorm(spec: ODConvSpec, bn: nn.BatchNorm2d) -> ODConvSpec:
    """An eval BatchNorm on the layer's output: its scale goes into every kernel, its shift becomes a bias.

    BN(filter * (conv(x, W) + b)) = filter * (conv(x, s * W) + s * b) + t, since s and the filter
    attention are both per output channel.
    """
    if spec.out_scale is not None:
        raise ValueError("the layer already has an output affine map; fold it first")
    scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
    shift = bn.bias.detach() - bn.running_mean.detach() * scale
    previous_bias = spec.out_bias if spec.out_bias is not None else torch.zeros_like(shift)
    return dataclasses.replace(
        spec,
        weight=spec.weight * scale.reshape(1, -1, 1, 1, 1),
        kernel_bias=None if spec.kernel_bias is None else spec.kernel_bias * scale,
        out_bias=previous_bias * scale + shift,
    )
