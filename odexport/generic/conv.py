"""A per-sample 2-D convolution whose traced graph does not depend on the batch size.

ONNX Conv takes one kernel for the whole batch and a constant group count, so a kernel per sample cannot
be one Conv node with a symbolic batch. Here every kernel tap of the input is a strided slice with
constant bounds (im2col), and one batched MatMul applies each sample's kernel to its own columns.
Measured against the folded Conv a fixed-batch trace would write, in benchmarks/generic.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# F.conv2d is torch.conv2d with a docstring; both names are listed in case a torch build splits them.
CONV2D = (torch.conv2d, F.conv2d)


@dataclass(frozen=True)
class Conv2dCall:
    """The arguments of one conv2d call; padding as (left, right, top, bottom), as F.pad takes it."""

    input: Tensor
    weight: Tensor
    bias: Tensor | None
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _padding(value, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    if value == "valid":
        return (0, 0, 0, 0)
    if value == "same":  # PyTorch puts the odd pixel of an even total on the right and bottom
        total_h, total_w = (d * (k - 1) for d, k in zip(dilation, kernel))
        return (total_w // 2, total_w - total_w // 2, total_h // 2, total_h - total_h // 2)
    height, width = _pair(value)
    return (width, width, height, height)


def parse_conv2d(args: tuple, kwargs: dict) -> Conv2dCall:
    """conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) as one record; an int
    argument a tracer hands over as a 0-dim tensor becomes a constant."""
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    given = dict(zip(names, args)) | kwargs
    weight = given["weight"]
    dilation = _pair(given.get("dilation", 1))
    kernel = (int(weight.shape[2]), int(weight.shape[3]))
    return Conv2dCall(given["input"], weight, given.get("bias"), _pair(given.get("stride", 1)),
                      _padding(given.get("padding", 0), kernel, dilation), dilation, int(given.get("groups", 1)))


def per_sample_conv2d(call: Conv2dCall, batch: int) -> Tensor:
    """The call's convolution with the batch unfolded from its groups -> [1, B * O, H_out, W_out] as the
    folded call returns it.

    call.input: [1, B * C, H, W], call.weight: [B * O, C / g, k_h, k_w], call.bias: [B * O] or None,
    call.groups: g * B, where ``batch`` is B at the time of the call (a trace's example batch); only C,
    O and g (per-sample sizes) become constants.
    """
    channels, rows, groups = int(call.input.shape[1]) // batch, int(call.weight.shape[0]) // batch, call.groups // batch
    x = call.input.reshape(-1, channels, *call.input.shape[2:])
    weight = call.weight.reshape(-1, rows, *(int(size) for size in call.weight.shape[1:]))
    bias = None if call.bias is None else call.bias.reshape(-1, rows)
    y = batched_conv2d(x, weight, bias, call.stride, call.padding, call.dilation, groups)
    return y.flatten(0, 1).unsqueeze(0)


def batched_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int],
                   padding: tuple[int, int, int, int], dilation: tuple[int, int], groups: int) -> Tensor:
    """x: [N, C, H, W], weight: [N or 1, O, C/g, k_h, k_w], bias: [N or 1, O] or None -> [N, O, H_out, W_out];
    sample n is convolved with kernel n (or the one shared kernel)."""
    out_channels, per_group, kernel_h, kernel_w = (int(size) for size in weight.shape[1:])
    columns = _kernel_taps(F.pad(x, padding), (kernel_h, kernel_w), stride, dilation)  # [N, C, kk, Ho, Wo]
    height, width = columns.shape[3], columns.shape[4]
    columns = columns.flatten(3).reshape(columns.shape[0], groups, per_group * kernel_h * kernel_w, -1)
    kernels = weight.reshape(-1, groups, out_channels // groups, per_group * kernel_h * kernel_w)
    y = torch.matmul(kernels, columns)  # [N, g, O/g, Ho * Wo]
    y = y.reshape(y.shape[0], out_channels, height, width)
    return y if bias is None else y + bias.reshape(-1, out_channels, 1, 1)


def _kernel_taps(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> Tensor:
    """x: [N, C, H, W] (padded) -> [N, C, k_h * k_w, H_out, W_out], tap (i, j) of the kernel at index i * k_w + j.

    A tap's slice ends the kernel's remaining reach before the end: with ceil division this gives
    H_out = (H - d (k - 1) - 1) // s + 1 elements at any stride, so every bound is a constant and the
    height and width may stay symbolic.
    """
    taps = []
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            end_h = -dilation[0] * (kernel[0] - 1 - i) or None
            end_w = -dilation[1] * (kernel[1] - 1 - j) or None
            taps.append(x[:, :, i * dilation[0]:end_h:stride[0], j * dilation[1]:end_w:stride[1]])
    return torch.stack(taps, dim=2)
