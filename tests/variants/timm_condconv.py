"""CondConv as timm lays it out in EfficientNet-CondConv, written from its description: ``CondConv2d``
holds the expert kernels but no routing; the inverted-residual block computes one routing from its
input and passes it to its three CondConv2d layers, whose inputs are different tensors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from . import per_sample_conv


class CondConv2d(nn.Module):
    """forward(x: [B, C, H, W], routing_weights: [B, E]) -> [B, O, H', W']"""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, dilation: int = 1, groups: int = 1, bias: bool = False,
                 num_experts: int = 4) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (kernel_size, kernel_size)
        # timm takes an int or an (H, W) pair for each of these
        self.stride, self.dilation = _pair(stride), _pair(dilation)
        self.padding = tuple((kernel_size - 1) // 2 * d for d in self.dilation) if padding is None else _pair(padding)
        self.groups, self.num_experts = groups, num_experts
        self.weight_shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.randn(num_experts, math.prod(self.weight_shape)))
        self.bias = nn.Parameter(torch.zeros(num_experts, out_channels)) if bias else None

    def forward(self, x: torch.Tensor, routing_weights: torch.Tensor) -> torch.Tensor:
        weight = (routing_weights @ self.weight).reshape(x.shape[0], *self.weight_shape)
        bias = None if self.bias is None else routing_weights @ self.bias
        return per_sample_conv(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.act = nn.SiLU()
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.conv_expand(self.act(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class CondConvResidual(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise (stride s), optional squeeze-excite, 1x1 project,
    each a CondConv2d routed by sigmoid(routing_fn(mean_hw(block input)))."""

    def __init__(self, in_chs: int, out_chs: int, dw_kernel_size: int = 3, stride: int = 1, exp_ratio: float = 2.0,
                 se: bool = False, num_experts: int = 4) -> None:
        super().__init__()
        mid = int(in_chs * exp_ratio)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.routing_fn = nn.Linear(in_chs, num_experts)
        self.conv_pw = CondConv2d(in_chs, mid, 1, num_experts=num_experts)
        self.bn1, self.act1 = nn.BatchNorm2d(mid), nn.SiLU()
        self.conv_dw = CondConv2d(mid, mid, dw_kernel_size, stride, groups=mid, num_experts=num_experts)
        self.bn2, self.act2 = nn.BatchNorm2d(mid), nn.SiLU()
        self.se = SqueezeExcite(mid, max(1, in_chs // 4)) if se else nn.Identity()
        self.conv_pwl = CondConv2d(mid, out_chs, 1, num_experts=num_experts)
        self.bn3 = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        routing = torch.sigmoid(self.routing_fn(F.adaptive_avg_pool2d(x, 1).flatten(1)))  # [B, E]
        x = self.act1(self.bn1(self.conv_pw(x, routing)))
        x = self.act2(self.bn2(self.conv_dw(x, routing)))
        x = self.se(x)
        x = self.bn3(self.conv_pwl(x, routing))
        return x + shortcut if self.has_skip else x


class CondConvNet(nn.Module):
    """A small EfficientNet-CondConv: stem, three routed blocks (3x3 residual with SE, 5x5 stride 2,
    3x3 residual), 1x1 head, classifier. x: [B, in_chans, H, W] -> [B, num_classes]"""

    def __init__(self, in_chans: int = 3, num_classes: int = 5, num_experts: int = 3) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(in_chans, 8, 3, 1, 1, bias=False)
        self.bn_stem, self.act_stem = nn.BatchNorm2d(8), nn.SiLU()
        self.blocks = nn.Sequential(
            CondConvResidual(8, 8, 3, 1, se=True, num_experts=num_experts),
            CondConvResidual(8, 12, 5, 2, num_experts=num_experts),
            CondConvResidual(12, 12, 3, 1, num_experts=num_experts),
        )
        self.conv_head = nn.Conv2d(12, 16, 1, bias=False)
        self.bn_head, self.act_head = nn.BatchNorm2d(16), nn.SiLU()
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_stem(self.bn_stem(self.conv_stem(x)))
        x = self.blocks(x)
        x = self.act_head(self.bn_head(self.conv_head(x)))
        return self.classifier(x.mean((2, 3)))


class RoutedCondConv(nn.Module):
    """A bare CondConv2d driven by a routing computed outside it: conv(x, sigmoid(routing_fn(mean_hw(x))))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 bias: bool = True, num_experts: int = 3) -> None:
        super().__init__()
        self.routing_fn = nn.Linear(in_channels, num_experts)
        self.conv = CondConv2d(in_channels, out_channels, kernel_size, stride, groups=groups, bias=bias,
                               num_experts=num_experts)

    def routing(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> [B, E], what conv receives"""
        return torch.sigmoid(self.routing_fn(x.mean((2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.routing(x))
