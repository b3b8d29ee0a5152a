"""ResNet-18/34/50/101 as in the official ODConv repository (``models/resnet.py``), written over a conv factory.

The same classes build the ODConv twins (:mod:`.od_resnet`): only the 3x3 and 1x1 convolutions inside the
blocks change kind; the stem and the downsample shortcuts stay plain in both. Module names and shapes
match the official ones, so official checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .layers import ConvFactory, init_weights_, plain_conv
from .registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual; x: [B, inplanes, H, W] -> [B, planes, H/stride, W/stride]."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 conv: ConvFactory = plain_conv) -> None:
        super().__init__()
        self.conv1 = conv(inplanes, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 with a residual; x: [B, inplanes, H, W] -> [B, 4*planes, H/s, W/s]."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 conv: ConvFactory = plain_conv) -> None:
        super().__init__()
        self.conv1 = conv(inplanes, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, stride, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv(planes, planes * self.expansion, 1)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = type[BasicBlock] | type[Bottleneck]

# depth -> (block, blocks per stage)
LAYOUTS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """ImageNet ResNet; x: [B, 3, H, W] -> logits [B, num_classes].

    ``dropout`` sits before the classifier (the official static ResNet has none: 0.0).
    """

    def __init__(self, block: Block, layers: Sequence[int], num_classes: int = 1000, dropout: float = 0.0,
                 conv: ConvFactory = plain_conv) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, conv)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, conv)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, conv)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, conv)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights_(self)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int, conv: ConvFactory) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                plain_conv(self.inplanes, planes * block.expansion, 1, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, conv=conv)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, conv=conv) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, 3, H, W] -> [B, num_classes]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


def _resnet(depth: int, num_classes: int, dropout: float) -> ResNet:
    block, layers = LAYOUTS[depth]
    return ResNet(block, layers, num_classes=num_classes, dropout=dropout)


@register_model(family="resnet", odconv=False, depth_or_width="18")
def resnet18(num_classes: int = 1000, dropout: float = 0.0) -> ResNet:
    return _resnet(18, num_classes, dropout)


@register_model(family="resnet", odconv=False, depth_or_width="34")
def resnet34(num_classes: int = 1000, dropout: float = 0.0) -> ResNet:
    return _resnet(34, num_classes, dropout)


@register_model(family="resnet", odconv=False, depth_or_width="50")
def resnet50(num_classes: int = 1000, dropout: float = 0.0) -> ResNet:
    return _resnet(50, num_classes, dropout)


@register_model(family="resnet", odconv=False, depth_or_width="101")
def resnet101(num_classes: int = 1000, dropout: float = 0.0) -> ResNet:
    return _resnet(101, num_classes, dropout)
