"""`depthwise-taps`: `decomposed` with depthwise layers written as their k*k taps, each scaled per sample
and per channel, then summed: a dynamic batch without im2col into a grouped 1x1 convolution.

A depthwise layer's every attention folds into a tiny per-sample kernel w[b, c, p] = channel[b, c] *
filter[b, c] * spatial[b, p] * sum_n kernel[b, n] W_n[c, p] ([B, C, k*k]: no pass over activations for
them), and the convolution itself is y[b, c] = sum_p w[b, c, p] * x_p[b, c], x_p the input shifted to tap
p. ONNX Conv cannot take a weight per sample at a dynamic batch (its group count is an attribute), but a
multiply and an add per tap can: the same multiply-adds as the convolution, no im2col columns, no 1x1
convolution with k*k inputs per group (which runtimes run slowly: `decomposed` made od_mobilenetv2_100
many times slower than its static twin, benchmarks/results/default.md). Other layers are `decomposed`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..odconv import AttentionBranch, ODConvSpec, aggregate_kernel_bias, aggregate_weights, apply_output_affine
from .decomposed import DecomposedODConv
from .registry import register_lowering


def is_depthwise(spec: ODConvSpec) -> bool:
    return spec.groups > 1 and spec.groups == spec.in_channels == spec.out_channels


class DepthwiseTapsODConv(nn.Module):
    """taps: "slice" (Pad, then a Slice per tap) or "conv" (a depthwise convolution with a constant
    one-hot kernel per tap, as `decomposed` takes its im2col columns). By default Slice at stride 1 and
    convolutions at a larger stride, where a strided Slice was the slower in OpenVINO at a dynamic batch
    (benchmarks/depthwise_forms.py on od_mobilenetv2_100's depthwise layers)."""

    def __init__(self, spec: ODConvSpec, taps: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.taps = taps or ("slice" if tuple(spec.stride) == (1, 1) else "conv")
        self.attention = AttentionBranch(spec)
        self.register_buffer("weight", spec.weight.clone())
        k = spec.kernel_size
        one_hot = torch.eye(k * k).reshape(k * k, 1, 1, k, k).expand(k * k, spec.in_channels, 1, k, k)
        self.register_buffer("tap_kernels", one_hot.contiguous() if self.taps == "conv" else None)

    def _taps(self, x: Tensor) -> list[Tensor]:
        """x: [B, C, H, W] -> k*k tensors [B, C, H_out, W_out], the input seen by each window position
        (row-major). Slice ends count from the padded input's end, so sizes stay symbolic in the export."""
        spec = self.spec
        if self.taps == "conv":
            return [F.conv2d(x, kernel, None, spec.stride, spec.padding, spec.dilation, spec.in_channels)
                    for kernel in self.tap_kernels]
        (pad_h, pad_w), (step_h, step_w), (dil_h, dil_w), k = spec.padding, spec.stride, spec.dilation, spec.kernel_size
        padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h)) if pad_h or pad_w else x
        taps = []
        for row in range(k):
            for col in range(k):
                end_h, end_w = (k - 1 - row) * dil_h, (k - 1 - col) * dil_w
                taps.append(padded[:, :, row * dil_h:(-end_h or None):step_h, col * dil_w:(-end_w or None):step_w])
        return taps

    def forward(self, x: Tensor, routing: Tensor | None = None) -> Tensor:
        """x: [B, C, H, W], routing: [B, n] for a routed layer -> [B, C, H_out, W_out]"""
        spec = self.spec
        att = self.attention(x, routing)
        batch = att.batch
        kernels = aggregate_weights(spec, self.weight, att, with_channel_and_filter=True)  # [B, C, 1, k, k]
        kernels = kernels.reshape(batch, spec.out_channels, -1, 1, 1)
        y = None
        for p, tap in enumerate(self._taps(x)):
            term = tap * kernels[:, :, p]
            y = term if y is None else y + term
        bias = aggregate_kernel_bias(spec, att, batch)
        if bias is not None:
            y = y + (bias * (att.filter if att.filter is not None else 1.0)).reshape(batch, -1, 1, 1)
        return apply_output_affine(spec, y)


@register_lowering(
    "depthwise-taps",
    "decomposed, with depthwise layers as k*k shifted inputs times a per-sample kernel, summed (dynamic batch)",
    dynamic_batch=True,
    # A depthwise layer's kernel is computed per sample (no constant weight to pre-pack or quantize).
    constant_weights=False,
)
def build_depthwise_taps(spec: ODConvSpec) -> nn.Module:
    return DepthwiseTapsODConv(spec) if is_depthwise(spec) else DecomposedODConv(spec)
