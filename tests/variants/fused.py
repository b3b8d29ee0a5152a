"""YOLO-style blocks with ODConv inside.

- ODConvBNAct: ODConv + BatchNorm + activation in one module, the official state-dict names (weight,
  attention.fc/bn/channel_fc/filter_fc/spatial_fc/kernel_fc) but YOLO hyper-parameter names (c1, c2, k,
  s, p, g, d) and the block's own ``bn`` and ``act``.
- WrappedODConv: a ``Conv``-like block holding an official ODConv2d under another attribute name
  (``odconv``), then ``norm`` and ``act``.
"""

from __future__ import annotations

import torch
from torch import nn

from odexport.models import ODConv2d
from odexport.models.odconv import Attention


def autopad(k: int, d: int = 1) -> int:
    return d * (k - 1) // 2


class ODConvBNAct(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, d: int = 1,
                 kernel_num: int = 4, reduction: float = 0.25) -> None:
        super().__init__()
        self.c1, self.c2, self.k, self.s, self.g, self.d = c1, c2, k, s, g, d
        self.p = autopad(k, d) if p is None else p
        self.attention = Attention(c1, c2, k, groups=g, reduction=reduction, kernel_num=kernel_num)
        self.weight = nn.Parameter(torch.randn(kernel_num, c2, c1 // g, k, k) * 0.1)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from . import per_sample_conv

        channel, filter_, spatial, kernel = self.attention(x)
        weight = torch.sum(spatial * kernel * self.weight.unsqueeze(0), dim=1)  # absent attentions are 1.0
        weight = weight.expand(x.shape[0], *weight.shape[1:])
        y = per_sample_conv(x * channel, weight, None, self.s, self.p, self.d, self.g) * filter_
        return self.act(self.bn(y))


class WrappedODConv(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1, kernel_num: int = 2) -> None:
        super().__init__()
        self.odconv = ODConv2d(c1, c2, k, s, autopad(k), reduction=0.25, kernel_num=kernel_num)
        self.norm = nn.BatchNorm2d(c2)
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.odconv(x)))
