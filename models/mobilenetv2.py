"""MobileNetV2 (0.5x, 0.75x, 1.0x) as in the official ODConv repository, written over a conv factory.

The same classes build the ODConv twins (:mod:`.od_mobilenetv2`): every convolution but the stem changes
kind. Module names and shapes match the official ones, so official checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import ConvFactory, init_weights_, plain_conv
from .registry import register_model

# Per stage: expansion t, output channels c (at width 1.0), blocks n, stride of the first block s.
STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor``, never dropping more than 10% of it.

    This is the TensorFlow MobileNet rule; the official checkpoints' channel counts depend on it.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU(nn.Sequential):
    """conv -> BN -> ReLU6 with "same" padding; children are named 0, 1, 2 as in the official model."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 conv: ConvFactory = plain_conv) -> None:
        super().__init__(
            conv(in_planes, out_planes, kernel_size, stride, (kernel_size - 1) // 2, groups),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1, linear); residual when shape is kept.

    x: [B, inp, H, W] -> [B, oup, H/stride, W/stride].
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, conv: ConvFactory = plain_conv) -> None:
        super().__init__()
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden_dim, kernel_size=1, conv=conv))
        layers += [
            ConvBNReLU(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, conv=conv),
            conv(hidden_dim, oup, 1, 1, 0),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """x: [B, 3, H, W] -> logits [B, num_classes]. The stem convolution is plain whatever ``conv`` is."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2,
                 conv: ConvFactory = plain_conv) -> None:
        super().__init__()
        input_channel = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU(3, input_channel, stride=2)]
        for t, c, n, s in STAGES:
            output_channel = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t, conv=conv))
                input_channel = output_channel
        features.append(ConvBNReLU(input_channel, self.last_channel, kernel_size=1, conv=conv))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        init_weights_(self)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, 3, H, W] -> [B, num_classes]."""
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


@register_model(family="mobilenetv2", odconv=False, depth_or_width="050")
def mobilenetv2_050(num_classes: int = 1000, dropout: float = 0.2) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, width_mult=0.5, dropout=dropout)


@register_model(family="mobilenetv2", odconv=False, depth_or_width="075")
def mobilenetv2_075(num_classes: int = 1000, dropout: float = 0.2) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, width_mult=0.75, dropout=dropout)


@register_model(family="mobilenetv2", odconv=False, depth_or_width="100")
def mobilenetv2_100(num_classes: int = 1000, dropout: float = 0.2) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, width_mult=1.0, dropout=dropout)
