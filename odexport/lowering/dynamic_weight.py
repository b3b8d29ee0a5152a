"""`dynamic-weight`: one Conv per layer whose kernel is aggregated per sample at run time.

The official formulation, minus its costs: the kernel sum over n is a MatMul, channel and filter
attentions scale activations, and only the spatial attention touches the kernel. ONNX's Conv.group is a
static attribute, so the batch is folded into groups at the traced size: the export has a fixed batch
(any size), which is what this form is for (latency at batch 1 on runtimes fast with run-time weights).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..odconv import AttentionBranch, ODConvSpec, aggregate_weights, apply_output_affine
from .registry import register_lowering


class DynamicWeightODConv(nn.Module):
    def __init__(self, spec: ODConvSpec) -> None:
        super().__init__()
        self.spec = spec
        self.attention = AttentionBranch(spec)
        self.register_buffer("weight", spec.weight.clone())

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, H_out, W_out]; B is fixed at export."""
        spec = self.spec
        batch, _, height, width = x.shape
        att = self.attention(x)
        x = x * att.channel.reshape(batch, -1, 1, 1)
        kernels = aggregate_weights(spec, self.weight, att)  # [B, C_out, C_in/g, k, k]
        if batch == 1:
            y = F.conv2d(x, kernels[0], None, spec.stride, spec.padding, spec.dilation, spec.groups)
        else:
            folded = x.reshape(1, -1, height, width)
            y = F.conv2d(folded, kernels.flatten(0, 1), None, spec.stride, spec.padding, spec.dilation,
                         spec.groups * batch)
            y = y.reshape(batch, spec.out_channels, y.shape[2], y.shape[3])
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
