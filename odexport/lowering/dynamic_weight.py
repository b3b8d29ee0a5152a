"""`dynamic-weight`: one Conv per layer whose kernel is aggregated per sample at run time.

The official formulation, minus its costs: the kernel sum over n is a MatMul, channel and filter
attentions scale activations, and only the spatial attention touches the kernel. ONNX's Conv.group is a
static attribute, so the batch is folded into groups at the traced size: the export has a fixed batch
(any size), which is what this form is for (latency at batch 1 on runtimes fast with run-time weights).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..odconv import (
    AttentionBranch,
    ODConvSpec,
    add_kernel_bias,
    aggregate_kernel_bias,
    aggregate_weights,
    apply_output_affine,
    scale_channels,
)
from .registry import register_lowering


class DynamicWeightODConv(nn.Module):
    """fold_activation_attentions: put the channel and filter attentions into the kernel too (no pass
    over activations: cheaper where the kernel is smaller than the activations, i.e. early layers)."""

    def __init__(self, spec: ODConvSpec, *, fold_activation_attentions: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.fold_activation_attentions = fold_activation_attentions
        self.attention = AttentionBranch(spec)
        self.register_buffer("weight", spec.weight.clone())

    def forward(self, x: Tensor, routing: Tensor | None = None) -> Tensor:
        """x: [B, C_in, H, W], routing: [B, n] for a routed layer -> [B, C_out, H_out, W_out]; B is
        fixed at export."""
        spec = self.spec
        batch, _, height, width = x.shape
        att = self.attention(x, routing)
        folded = self.fold_activation_attentions
        if not folded:
            x = scale_channels(x, att)
        k = spec.kernel_size
        # [B * C_out, C_in/g, k, k] with every size a constant (the batch is fixed in this form): behind a
        # layer whose sizes the tracer keeps symbolic (a decomposed one under `auto`) the exporter could
        # not infer the kernel's shape, which ONNX Conv needs.
        rows = int(batch) * spec.out_channels
        kernels = aggregate_weights(spec, self.weight, att, with_channel_and_filter=folded)
        kernels = kernels.reshape(rows, spec.in_channels // spec.groups, k, k)
        if batch == 1:
            y = F.conv2d(x, kernels, None, spec.stride, spec.padding, spec.dilation, spec.groups)
        else:
            stacked = x.reshape(1, -1, height, width)
            y = F.conv2d(stacked, kernels, None, spec.stride, spec.padding, spec.dilation, spec.groups * batch)
            y = y.reshape(batch, spec.out_channels, y.shape[2], y.shape[3])
        if folded:
            # The filter attention is in the kernel already; the kernel bias, added before it, needs it too.
            bias = aggregate_kernel_bias(spec, att, batch)
            if bias is not None:
                scale = att.filter if att.filter is not None else 1.0
                y = y + (bias * scale).reshape(batch, -1, 1, 1)
            return apply_output_affine(spec, y)
        y = add_kernel_bias(spec, y, att)
        if att.filter is not None:
            y = y * att.filter.reshape(batch, -1, 1, 1)
        return apply_output_affine(spec, y)


@register_lowering(
    "dynamic-weight",
    "one Conv per layer with a kernel aggregated per sample at run time (fixed batch)",
    dynamic_batch=False,
    constant_weights=False,
)
def build_dynamic_weight(spec: ODConvSpec) -> nn.Module:
    return DynamicWeightODConv(spec)


@register_lowering(
    "folded-weight",
    "dynamic-weight with the channel and filter attentions in the kernel too: one Conv, no pass over "
    "activations (fixed batch)",
    dynamic_batch=False,
    constant_weights=False,
)
def build_folded_weight(spec: ODConvSpec) -> nn.Module:
    return DynamicWeightODConv(spec, fold_activation_attentions=True)
