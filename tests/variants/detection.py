"""A small detection-style network: an ODConv backbone (official, fused YOLO-style, DyConv layers), an
FPN-like neck, and three heads with several outputs each, returned as a dict of tuples."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from odexport.models import ODConv2d

from .dyconv import Dynamic_conv2d
from .fused import ODConvBNAct


class TinyDetector(nn.Module):
    def __init__(self, num_classes: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = ODConvBNAct(in_channels, 8, 3, 2, kernel_num=2)  # /2
        self.stage1 = ODConvBNAct(8, 12, 3, 2, kernel_num=3)  # /4
        self.stage2 = nn.Sequential(ODConv2d(12, 16, 3, 2, 1, reduction=0.25, kernel_num=2), nn.BatchNorm2d(16),
                                    nn.ReLU())  # /8
        self.lateral = Dynamic_conv2d(16, 12, 1, padding=0, K=2, temperature=4.0)
        self.smooth = ODConvBNAct(12, 12, 3, 1, kernel_num=2)
        self.cls_head = nn.Conv2d(12, num_classes, 1)
        self.box_head = nn.Conv2d(12, 4, 1)
        self.obj_head = nn.Conv2d(16, 1, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: [B, C, H, W] -> {"p4": (cls [B, classes, H/4, W/4], box [B, 4, H/4, W/4]),
        "p8": objectness [B, 1, H/8, W/8]}"""
        c4 = self.stage1(self.stem(x))
        c8 = self.stage2(c4)
        p4 = self.smooth(c4 + F.interpolate(self.lateral(c8), size=c4.shape[-2:], mode="nearest"))
        return {"p4": (self.cls_head(p4), self.box_head(p4)), "p8": self.obj_head(c8)}
