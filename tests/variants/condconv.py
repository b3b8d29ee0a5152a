"""CondConv as timm's CondConv2d lays it out (expert kernels flattened to [E, O * C/g * k * k], a bias
per expert), with its routing function inside: GAP -> Linear -> sigmoid."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import per_sample_conv


class CondConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 dilation: int = 1, groups: int = 1, bias: bool = True, num_experts: int = 4) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (kernel_size, kernel_size)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.num_experts = num_experts
        self.weight_shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.randn(num_experts, math.prod(self.weight_shape)))
        self.bias = nn.Parameter(torch.zeros(num_experts, out_channels)) if bias else None
        self.routing_fn = nn.Linear(in_channels, num_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        routing = torch.sigmoid(self.routing_fn(F.adaptive_avg_pool2d(x, 1).flatten(1)))  # [B, E]
        weight = (routing @ self.weight).reshape(x.shape[0], *self.weight_shape)
        bias = None if self.bias is None else routing @ self.bias
        return per_sample_conv(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
