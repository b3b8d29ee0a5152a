"""The ODConv forward math, written once over an :class:`ODConvSpec`.

Every lowering builds on :class:`AttentionBranch` (the four attentions) and on the helpers here, so the
formula that a lowering must reproduce is :func:`reference_forward`:

    y[b] = filter[b] * (conv(channel[b] * x[b], sum_n kernel[b, n] * spatial[b] * W[n])
                        + sum_n kernel[b, n] * kernel_bias[n])

where the kernel attention is computed from x, or, for a routed layer (spec.routed), given by the
caller: every forward here takes ``(x, routing=None)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .spec import ODConvSpec


class Attentions(NamedTuple):
    """Per-sample attentions; an attention that is identically 1 is None."""

    channel: Tensor | None  # [B, C_in]
    filter: Tensor | None  # [B, C_out]
    spatial: Tensor | None  # [B, k*k], row-major over the kernel window
    kernel: Tensor | None  # [B, n]: a softmax over n (ODConv, DyConv) or a sigmoid each (CondConv)

    @property
    def batch(self):
        """B, read from the first attention present (a layer has at least one)."""
        return next(a for a in self if a is not None).shape[0]


class AttentionBranch(nn.Module):
    """GAP -> fc (BatchNorm folded) -> ReLU -> merged heads (temperature folded) -> sigmoid / softmax.

    The constants are buffers so that an exported graph carries them as initializers. A routed layer's
    branch computes nothing: its kernel attention is the routing the caller gives.
    """

    def __init__(self, spec: ODConvSpec) -> None:
        super().__init__()
        self.register_buffer("fc_weight", spec.fc_weight.clone())
        self.register_buffer("fc_bias", spec.fc_bias.clone())
        self.register_buffer("head_weight", spec.head_weight.clone())
        self.register_buffer("head_bias", spec.head_bias.clone())
        self.head_sizes = spec.head_sizes
        self.kernel_activation = spec.kernel_activation
        self.routed = spec.routed

    def forward(self, x: Tensor, routing: Tensor | None = None) -> Attentions:
        """x: [B, C_in, H, W]; routing: [B, n], the kernel attention of a routed layer (None otherwise)"""
        if self.routed != (routing is not None):
            raise TypeError("a routed layer takes (x, routing) and a layer that computes its attention takes x"
                            f" alone; got routing={'None' if routing is None else list(routing.shape)}")
        if routing is not None:
            return Attentions(None, None, None, routing)
        pooled = x.mean(dim=(2, 3))
        hidden = F.relu(F.linear(pooled, self.fc_weight, self.fc_bias))
        logits = F.linear(hidden, self.head_weight, self.head_bias)
        channel_rows, filter_rows, spatial_rows, kernel_rows = self.head_sizes
        sigmoid_rows = channel_rows + filter_rows + spatial_rows
        if self.kernel_activation == "sigmoid":
            sigmoid_rows += kernel_rows
        # One Sigmoid over the sigmoid heads: fewer nodes than one per head.
        gates = torch.sigmoid(logits[:, :sigmoid_rows] if sigmoid_rows < logits.shape[1] else logits)
        channel = gates[:, :channel_rows] if channel_rows else None
        filter_ = gates[:, channel_rows:channel_rows + filter_rows] if filter_rows else None
        spatial_end = channel_rows + filter_rows + spatial_rows
        spatial = gates[:, channel_rows + filter_rows:spatial_end] if spatial_rows else None
        kernel = None
        if kernel_rows:
            kernel = gates[:, spatial_end:] if self.kernel_activation == "sigmoid" else torch.softmax(
                logits[:, spatial_end:], dim=1)
        return Attentions(channel, filter_, spatial, kernel)


def apply_output_affine(spec: ODConvSpec, y: Tensor) -> Tensor:
    """Apply the spec's post-layer scale and bias (a folded following BatchNorm leaves only a bias)."""
    if spec.out_scale is not None:
        y = y * spec.out_scale.reshape(1, -1, 1, 1)
    if spec.out_bias is not None:
        y = y + spec.out_bias.reshape(1, -1, 1, 1)
    return y


def scale_channels(x: Tensor, attentions: Attentions) -> Tensor:
    """x: [B, C_in, H, W] times the channel attention (x itself when the layer has none)."""
    if attentions.channel is None:
        return x
    return x * attentions.channel.reshape(x.shape[0], -1, 1, 1)


def aggregate_kernel_bias(spec: ODConvSpec, attentions: Attentions, batch: int) -> Tensor | None:
    """The per-sample bias sum_n kernel[b, n] * kernel_bias[n]: [B, C_out] (None without a kernel bias)."""
    if spec.kernel_bias is None:
        return None
    if attentions.kernel is None:
        return spec.kernel_bias.sum(dim=0, keepdim=True).expand(batch, -1)
    return torch.matmul(attentions.kernel, spec.kernel_bias)


def add_kernel_bias(spec: ODConvSpec, y: Tensor, attentions: Attentions) -> Tensor:
    """y: [B, C_out, H, W] plus the aggregated kernel bias (before the filter attention)."""
    bias = aggregate_kernel_bias(spec, attentions, y.shape[0])
    return y if bias is None else y + bias.reshape(y.shape[0], -1, 1, 1)


def aggregate_weights(
    spec: ODConvSpec, weight: Tensor, attentions: Attentions, *, with_channel_and_filter: bool = False
) -> Tensor:
    """Per-sample kernels: sum_n kernel[b, n] * spatial[b] * W[n].

    weight: [n, C_out, C_in/g, k, k] -> [B, C_out, C_in/g, k, k]
    The sum over n is a MatMul: as a broadcast multiply plus ReduceSum it runs hundreds of times
    slower in OpenVINO. with_channel_and_filter also scales each kernel by filter[b, out] and
    channel[b, in], so that the convolution needs no pass over its input or output for them (cheaper
    than scaling activations where the kernel is smaller than the activations).
    """
    batch = attentions.batch
    n = spec.kernel_num
    if attentions.kernel is None:
        aggregated = weight.reshape(1, *weight.shape[1:]).expand(batch, *weight.shape[1:])
    else:
        aggregated = torch.matmul(attentions.kernel, weight.reshape(n, -1)).reshape(batch, *weight.shape[1:])
    k = spec.kernel_size
    if with_channel_and_filter:
        # One small factor [B, C_out or 1, C_in/g, k or 1, k or 1], then a single pass over the kernels.
        g, c_in_g, c_out = spec.groups, spec.in_channels // spec.groups, spec.out_channels
        channel = attentions.channel if attentions.channel is not None else aggregated.new_ones(batch, spec.in_channels)
        factor = channel.reshape(batch, g, 1, c_in_g, 1, 1)
        if g > 1:  # kernel row o reads the input channels of its own group
            factor = factor.expand(batch, g, c_out // g, c_in_g, 1, 1)
        factor = factor.reshape(batch, -1, c_in_g, 1, 1)
        if attentions.filter is not None:
            factor = factor * attentions.filter.reshape(batch, c_out, 1, 1, 1)
        if attentions.spatial is not None:
            factor = factor * attentions.spatial.reshape(batch, 1, 1, k, k)
        return aggregated * factor
    if attentions.spatial is not None:
        aggregated = aggregated * attentions.spatial.reshape(batch, 1, 1, k, k)
    return aggregated


@torch.no_grad()
def reference_forward(spec: ODConvSpec, x: Tensor, routing: Tensor | None = None) -> Tensor:
    """The defining formula, one sample at a time (slow; for tests and as documentation).

    x: [B, C_in, H, W], routing: [B, n] for a routed layer -> [B, C_out, H_out, W_out]
    """
    attentions = AttentionBranch(spec)(x, routing)
    kernels = aggregate_weights(spec, spec.weight, attentions)
    biases = aggregate_kernel_bias(spec, attentions, x.shape[0])
    scaled = scale_channels(x, attentions)
    outputs = []
    for b in range(x.shape[0]):
        bias = None if biases is None else biases[b]
        yb = F.conv2d(scaled[b:b + 1], kernels[b], bias, spec.stride, spec.padding, spec.dilation, spec.groups)
        if attentions.filter is not None:
            yb = yb * attentions.filter[b].reshape(1, -1, 1, 1)
        outputs.append(yb)
    return apply_output_affine(spec, torch.cat(outputs))
