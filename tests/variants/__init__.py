"""Third-party dynamic-convolution variants, written for the tests from their descriptions (issue 8), and
a seeded initialisation that makes their attentions do real work."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded weights: matrices ~ N(0, 1/fan_in), vectors (biases, head offsets) ~ N(0, 1) so that
    sigmoids and softmaxes sit away from flat, BatchNorm statistics spread; eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_var"):
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
        elif name.endswith("running_mean"):
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
        elif tensor.dim() <= 1 or (tensor.dim() == 2 and name.endswith("bias")):
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
        else:
            fan_in = math.prod(tensor.shape[-3:]) if tensor.dim() >= 4 else tensor.shape[-1]
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 1.5 / math.sqrt(fan_in))
    return module.eval()


def per_sample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation,
                    groups: int) -> torch.Tensor:
    """x: [B, C, H, W], weight: [B, O, C/g, k, k], bias: [B, O] or None -> [B, O, Ho, Wo], the batch folded
    into groups as the forks do."""
    b, c, h, w = x.shape
    out = torch.nn.functional.conv2d(x.reshape(1, b * c, h, w), weight.reshape(-1, *weight.shape[2:]),
                                     None if bias is None else bias.reshape(-1), stride, padding, dilation, groups * b)
    return out.reshape(b, -1, out.shape[-2], out.shape[-1])
