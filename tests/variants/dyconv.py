"""DyConv-style Dynamic_conv2d (Chen et al. 2020): softmax attention over K kernels, sharpened by a
temperature kept as a plain attribute (annealed during training, so not in the state dict)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import per_sample_conv


class Attention2d(nn.Module):
    def __init__(self, in_planes: int, ratio: float, K: int, temperature: float) -> None:
        super().__init__()
        hidden = max(int(in_planes * ratio), 4)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(in_planes, hidden, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Conv2d(hidden, K, 1, bias=True)
        self.temperature = temperature

    def update_temperature(self) -> None:
        if self.temperature > 1:
            self.temperature -= 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(F.relu(self.bn(self.fc1(self.avgpool(x)))))
        return F.softmax(x.flatten(1) / self.temperature, dim=1)


class Dynamic_conv2d(nn.Module):  # noqa: N801  (the name DyConv code uses)
    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, ratio: float = 0.25, stride: int = 1,
                 padding: int = 1, dilation: int = 1, groups: int = 1, bias: bool = True, K: int = 4,
                 temperature: float = 34.0) -> None:
        super().__init__()
        self.in_planes, self.out_planes, self.kernel_size = in_planes, out_planes, kernel_size
        self.stride, self.padding, self.dilation, self.groups, self.K = stride, padding, dilation, groups, K
        self.attention = Attention2d(in_planes, ratio, K, temperature)
        self.weight = nn.Parameter(torch.randn(K, out_planes, in_planes // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(K, out_planes)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = self.attention(x)  # [B, K]
        weight = (attention @ self.weight.reshape(self.K, -1)).reshape(x.shape[0], *self.weight.shape[1:])
        bias = None if self.bias is None else attention @ self.bias
        return per_sample_conv(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
