"""A dynamic convolution no adapter knows: its kernel is a learned 5-D stack mixed by a gate whose
layout matches none of the registered variants."""

from __future__ import annotations

import torch
from torch import nn

from . import per_sample_conv


class MixtureConv(nn.Module):
    def __init__(self, channels: int, experts: int = 3) -> None:
        super().__init__()
        self.experts = nn.Parameter(torch.randn(experts, channels, channels, 3, 3) * 0.1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = torch.softmax(self.gate(x), dim=1)
        weight = torch.einsum("be,eoikl->boikl", mix, self.experts)
        return per_sample_conv(x, weight, None, 1, 1, 1, 1)


class NetWithUnknownDynamicConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = MixtureConv(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(torch.relu(self.stem(x))).mean(dim=(2, 3)))
