"""Describe a layer laid out like the official ``ODConv2d`` (OSVAI/ODConv ``modules/odconv.py``)."""

from __future__ import annotations

import torch

from .folding import drop_identity_attentions, fold_batchnorm, fold_temperature, merge_heads
from .spec import ODConvSpec, as_pair


def describe_official(module: torch.nn.Module, *, attention_batchnorm: bool = True) -> ODConvSpec:
    """Describe a module laid out like the official ``ODConv2d`` (names ``weight``, ``attention.fc`` ...).

    attention_batchnorm: fold ``attention.bn`` in (the official forward applies it); False for forks that
    keep it in the state dict but never apply it.
    """
    attention = module.attention
    fc_weight = attention.fc.weight.detach().flatten(1)
    if attention_batchnorm:
        fc_weight, fc_bias = fold_batchnorm(fc_weight, None, attention.bn)
    else:
        fc_bias = torch.zeros(fc_weight.shape[0], dtype=fc_weight.dtype)
    heads = [getattr(attention, name, None) for name in ("channel_fc", "filter_fc", "spatial_fc", "kernel_fc")]
    heads = drop_identity_attentions(heads, module.kernel_num)
    head_weight, head_bias, sizes = merge_heads(heads)
    head_weight, head_bias = fold_temperature(head_weight, head_bias, float(attention.temperature))

    return ODConvSpec(
        in_channels=module.in_planes,
        out_channels=module.out_planes,
        kernel_size=as_pair(module.kernel_size)[0],
        stride=as_pair(module.stride),
        padding=as_pair(module.padding),
        dilation=as_pair(module.dilation),
        groups=module.groups,
        kernel_num=module.kernel_num,
        weight=module.weight.detach().clone(),
        fc_weight=fc_weight,
        fc_bias=fc_bias,
        head_weight=head_weight,
        head_bias=head_bias,
        head_sizes=sizes,
    )
