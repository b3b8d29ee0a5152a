"""`decomposed`: standard ONNX ops only, every convolution weight a constant, any batch and size.

- channel and filter attentions scale activations (input and output) instead of the weight;
- spatial attention scales the k*k shifted copies of the input (im2col), which a 1x1 convolution with the
  rearranged constant kernel then sums: the same multiply-adds as the k*k conv. Each copy comes from a
  depthwise convolution with a constant one-hot kernel (stride, padding and dilation for free): runtimes
  run those in their blocked layouts with vector kernels, where Pad + Slice ran OpenVINO's reference
  kernels and a layout Reorder per slice (OpenVINO performance counters, `odexport profile --layers`; the
  whole-model effect is in benchmarks/results/sweep.md);
- kernel attention: the n kernels run as one stacked convolution and a MatMul with the per-sample
  kernel weights sums their outputs (n times the multiply-adds, but no run-time weight).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..odconv import AttentionBranch, ODConvSpec, apply_output_affine, scale_channels
from .registry import register_lowering


class DecomposedODConv(nn.Module):
    def __init__(self, spec: ODConvSpec) -> None:
        super().__init__()
        self.spec = spec
        self.attention = AttentionBranch(spec)
        n, c_out, c_in_g, k, _ = spec.weight.shape
        g = spec.groups
        self.uses_im2col = spec.head_sizes[2] > 0
        # Output channels ordered [group, kernel, C_out/g] so that a grouped conv keeps groups apart.
        stacked = spec.weight.reshape(n, g, c_out // g, c_in_g, k, k).transpose(0, 1)
        if self.uses_im2col:
            # Within a group, input channels ordered [tap, C_in/g] to match the stacked taps.
            stacked = stacked.permute(0, 1, 2, 4, 5, 3).reshape(g * n * c_out // g, k * k * c_in_g, 1, 1)
        else:
            stacked = stacked.reshape(g * n * c_out // g, c_in_g, k, k)
        self.register_buffer("stacked_weight", stacked.contiguous())
        # A per-kernel bias rides on the stacked convolution: the kernel attention then sums
        # sum_n a_n * (conv_n + b_n), which is the aggregated kernel plus the aggregated bias.
        stacked_bias = None
        if spec.kernel_bias is not None:
            stacked_bias = spec.kernel_bias.reshape(n, g, c_out // g).transpose(0, 1).reshape(-1)
            if n > 1 and spec.head_sizes[3] == 0:
                raise ValueError("a per-kernel bias over several kernels needs a kernel attention")
        self.register_buffer("stacked_bias", None if stacked_bias is None else stacked_bias.contiguous())
        if self.uses_im2col:
            # Tap t's depthwise kernel is 1 at window position t and 0 elsewhere: [k*k, C_in, 1, k, k].
            one_hot = torch.eye(k * k).reshape(k * k, 1, 1, k, k).expand(k * k, spec.in_channels, 1, k, k)
            self.register_buffer("tap_kernels", one_hot.contiguous())

    def _columns(self, x: Tensor, spatial: Tensor) -> Tensor:
        """x: [B, C, H, W], spatial: [B, k*k] -> [B, k*k*C, H_out, W_out], the input seen by each kernel tap,
        scaled by its spatial attention, ordered [group, tap, C/g]."""
        spec = self.spec
        batch, g = x.shape[0], spec.groups
        taps = [F.conv2d(x, self.tap_kernels[t], None, spec.stride, spec.padding, spec.dilation, spec.in_channels)
                for t in range(spec.kernel_size ** 2)]
        # One multiply over all columns (each tap's scale repeated over its channels), not one per tap.
        scale = spatial.reshape(batch, -1, 1).expand(batch, len(taps), spec.in_channels)
        columns = torch.cat(taps, dim=1) * scale.reshape(batch, -1, 1, 1)
        if g > 1:
            # Sizes read from the traced tensor stay symbolic in the export (dynamic H and W).
            height, width = columns.shape[2], columns.shape[3]
            columns = columns.reshape(batch, len(taps), g, spec.in_channels // g, height, width).transpose(1, 2)
            columns = columns.reshape(batch, -1, height, width)
        return columns

    def forward(self, x: Tensor, routing: Tensor | None = None) -> Tensor:
        """x: [B, C_in, H, W], routing: [B, n] for a routed layer -> [B, C_out, H_out, W_out]"""
        spec = self.spec
        batch = x.shape[0]
        g, n, c_out = spec.groups, spec.kernel_num, spec.out_channels
        att = self.attention(x, routing)
        x = scale_channels(x, att)
        if self.uses_im2col:
            y = F.conv2d(self._columns(x, att.spatial), self.stacked_weight, self.stacked_bias, 1, 0, 1, g)
        else:
            y = F.conv2d(x, self.stacked_weight, self.stacked_bias, spec.stride, spec.padding, spec.dilation, g)
        if att.kernel is not None:
            height, width = y.shape[2], y.shape[3]
            per_kernel = y.reshape(batch, g, n, -1).transpose(1, 2) if g > 1 else y
            per_kernel = per_kernel.reshape(batch, n, -1)
            y = torch.matmul(att.kernel.unsqueeze(1), per_kernel).reshape(batch, c_out, height, width)
        if att.filter is not None:
            y = y * att.filter.reshape(batch, -1, 1, 1)
        return apply_output_affine(spec, y)


@register_lowering(
    "decomposed",
    "standard ONNX ops, constant convolution weights (im2col for spatial attention, stacked kernels)",
    dynamic_batch=True,
    constant_weights=True,
)
def build_decomposed(spec: ODConvSpec) -> nn.Module:
    return DecomposedODConv(spec)
