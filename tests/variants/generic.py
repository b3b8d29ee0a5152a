"""A dynamic convolution with attention math of our own, which no adapter describes: only the generic
path can export it. The batch is folded into convolution groups, as the forks do."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from odexport.models import ODConv2d

from . import per_sample_conv


class PoolGatedMixtureConv(nn.Module):
    """A kernel mixture routed by a softplus of max-pooled features.

    gate[b] = softplus(router(max_hw(x[b]))), normalised to sum 1 over the experts;
    kernel[b] = sum_e gate[b, e] * experts[e], bias[b] = sum_e gate[b, e] * biases[e].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
                 padding: int = 1, dilation: int = 1, groups: int = 1, experts: int = 4, bias: bool = True) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.experts = nn.Parameter(torch.randn(experts, out_channels, in_channels // groups, kernel_size, kernel_size))
        self.biases = nn.Parameter(torch.randn(experts, out_channels)) if bias else None
        self.router = nn.Linear(in_channels, experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.softplus(self.router(F.adaptive_max_pool2d(x, 1).flatten(1)))
        gate = gate / gate.sum(dim=1, keepdim=True)
        weight = torch.einsum("be,eoikl->boikl", gate, self.experts)
        bias = None if self.biases is None else gate @ self.biases
        return per_sample_conv(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class NetWithPoolGatedConvs(nn.Module):
    """Two generic layers (grouped and strided with a bias and a BatchNorm after it; depthwise and dilated)
    beside an official ODConv layer that its adapter takes."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(channels, 8, 3, padding=1)
        self.down = PoolGatedMixtureConv(8, 16, stride=2, groups=2)
        self.bn = nn.BatchNorm2d(16)
        self.depthwise = PoolGatedMixtureConv(16, 16, padding=2, dilation=2, groups=16, bias=False)
        self.odconv = ODConv2d(16, 16, 3, padding=1, kernel_num=2)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.down(torch.relu(self.stem(x)))))
        x = torch.relu(self.odconv(torch.relu(self.depthwise(x))))
        return self.head(x.mean(dim=(2, 3)))
