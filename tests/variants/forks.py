"""Dynamic convolutions as forks lay them out (issue 16), written for the tests from their descriptions.

- YoloODConv: a YOLO-style ODConv layer ``(c1, c2, k, s)`` that keeps the official attribute names as
  well and ends its own forward with a BatchNorm (optional) and an activation, under names the official
  layer does not have (``norm``, ``act``).
- UnnormalisedODConv: the official layer whose attention keeps ``bn`` in the state dict but never applies
  it.
- ThirdGenODConv: nn.Linear heads ``fc_c``/``fc_f``/``fc_s``/``fc_w`` on the layer itself, after a 1x1
  Conv2d squeeze and a BatchNorm2d that the layer skips at batch 1; a bias per kernel ``[K, out]``; and
  modules it never uses.
- OmniConv: an omni-attention child whose heads are 1x1 Conv2d named ``in_chans_fc``, ``filter_fc``,
  ``spatial_fc``, ``expert_fc``, and no temperature at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from odexport.models import ODConv2d
from odexport.models.odconv import Attention

from . import per_sample_conv


def _aggregate(weight: torch.Tensor, kernel: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """weight [K, O, C/g, k, k], kernel [B, K], spatial [B, k*k] -> per-sample kernels [B, O, C/g, k, k]"""
    b, k = kernel.shape[0], weight.shape[-1]
    mixed = torch.einsum("bn,noikl->boikl", kernel, weight)
    return mixed * spatial.reshape(b, 1, 1, k, k)


class YoloODConv(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, g: int = 1, kernel_num: int = 4,
                 bn: bool = True) -> None:
        super().__init__()
        self.c1, self.c2, self.k, self.s, self.p = c1, c2, k, s, k // 2
        # The fork started from the official layer and kept its names beside the YOLO ones.
        self.in_planes, self.out_planes, self.kernel_size, self.kernel_num = c1, c2, k, kernel_num
        self.stride, self.padding, self.dilation, self.groups = s, k // 2, 1, g
        self.attention = Attention(c1, c2, k, groups=g, reduction=0.25, kernel_num=kernel_num)
        self.weight = nn.Parameter(torch.randn(kernel_num, c2, c1 // g, k, k))
        self.norm = nn.BatchNorm2d(c2) if bn else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel, filter_, spatial, kernel = self.attention(x)
        weight = torch.sum(spatial * kernel * self.weight.unsqueeze(0), dim=1)
        weight = weight.expand(x.shape[0], *weight.shape[1:])
        y = per_sample_conv(x * channel, weight, None, self.s, self.p, 1, self.groups) * filter_
        return self.act(self.norm(y))


class UnnormalisedAttention(Attention):
    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.fc(self.avgpool(x)))  # self.bn stays in the state dict, unused


class UnnormalisedODConv(ODConv2d):
    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, kernel_num: int = 4) -> None:
        super().__init__(in_planes, out_planes, kernel_size, stride, padding, groups=groups, reduction=0.25,
                         kernel_num=kernel_num)
        self.attention = UnnormalisedAttention(in_planes, out_planes, kernel_size, groups=groups, reduction=0.25,
                                               kernel_num=kernel_num)


class ThirdGenODConv(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 groups: int = 1, K: int = 4, hidden: int = 10) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups, self.K = stride, padding, 1, groups, K
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.randn(K, out_planes, in_planes // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(K, out_planes))
        self.squeeze = nn.Conv2d(in_planes, hidden, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.fc_c = nn.Linear(hidden, in_planes)
        self.fc_f = nn.Linear(hidden, out_planes)
        self.fc_s = nn.Linear(hidden, kernel_size * kernel_size)
        self.fc_w = nn.Linear(hidden, K)
        # Left over from experiments: in the state dict, never called.
        self.dropout = nn.Dropout(0.2)
        self.proj = nn.Linear(hidden, hidden)
        self.norm_out = nn.BatchNorm2d(out_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.squeeze(F.adaptive_avg_pool2d(x, 1))
        if x.shape[0] > 1:  # BatchNorm cannot train on one sample
            h = self.bn(h)
        h = F.relu(h).flatten(1)
        channel, filter_ = torch.sigmoid(self.fc_c(h)), torch.sigmoid(self.fc_f(h))
        spatial, kernel = torch.sigmoid(self.fc_s(h)), F.softmax(self.fc_w(h), dim=1)
        weight = _aggregate(self.weight, kernel, spatial)
        y = per_sample_conv(x * channel[:, :, None, None], weight, kernel @ self.bias, self.stride, self.padding,
                            self.dilation, self.groups)
        return y * filter_[:, :, None, None]


class OmniAttention(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, kernel_num: int, hidden: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(in_planes, hidden, 1, bias=False)
        self.norm = nn.BatchNorm2d(hidden)
        self.in_chans_fc = nn.Conv2d(hidden, in_planes, 1)
        self.filter_fc = nn.Conv2d(hidden, out_planes, 1)
        self.spatial_fc = nn.Conv2d(hidden, kernel_size * kernel_size, 1)
        self.expert_fc = nn.Conv2d(hidden, kernel_num, 1)

    def forward(self, x: torch.Tensor):
        h = F.relu(self.norm(self.fc(self.pool(x))))
        heads = (self.in_chans_fc, self.filter_fc, self.spatial_fc)
        gates = [torch.sigmoid(head(h).flatten(1)) for head in heads]
        return (*gates, F.softmax(self.expert_fc(h).flatten(1), dim=1))


class OmniConv(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 groups: int = 1, kernel_num: int = 3, hidden: int = 8) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = stride, padding, 1, groups
        self.omni = OmniAttention(in_planes, out_planes, kernel_size, kernel_num, hidden)
        self.weight = nn.Parameter(torch.randn(kernel_num, out_planes, in_planes // groups, kernel_size, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel, filter_, spatial, kernel = self.omni(x)
        weight = _aggregate(self.weight, kernel, spatial)
        y = per_sample_conv(x * channel[:, :, None, None], weight, None, self.stride, self.padding, self.dilation,
                            self.groups)
        return y * filter_[:, :, None, None]
