"""ODConv ResNets as in the official repository (``models/od_resnet.py``): every block convolution is an ODConv.

The stem (7x7) and the downsample shortcuts stay plain ``nn.Conv2d``, as in the official model.
"""

from __future__ import annotations

from collections.abc import Sequence

from .layers import odconv_factory, set_temperature
from .registry import register_model
from .resnet import LAYOUTS, Block, ResNet


class ODResNet(ResNet):
    """ResNet with ODConv block convolutions; x: [B, 3, H, W] -> logits [B, num_classes]."""

    def __init__(self, block: Block, layers: Sequence[int], num_classes: int = 1000, dropout: float = 0.1,
                 reduction: float = 0.0625, kernel_num: int = 1) -> None:
        super().__init__(block, layers, num_classes=num_classes, dropout=dropout,
                         conv=odconv_factory(reduction, kernel_num))

    def net_update_temperature(self, temperature: float) -> None:
        """Set the attention temperature of every ODConv layer (official name)."""
        set_temperature(self, temperature)


def _od_resnet(depth: int, num_classes: int, dropout: float, reduction: float, kernel_num: int) -> ODResNet:
    block, layers = LAYOUTS[depth]
    return ODResNet(block, layers, num_classes=num_classes, dropout=dropout, reduction=reduction,
                    kernel_num=kernel_num)


@register_model(family="resnet", odconv=True, depth_or_width="18", static_twin="resnet18")
def od_resnet18(num_classes: int = 1000, dropout: float = 0.1, reduction: float = 0.0625,
                kernel_num: int = 1) -> ODResNet:
    return _od_resnet(18, num_classes, dropout, reduction, kernel_num)


@register_model(family="resnet", odconv=True, depth_or_width="34", static_twin="resnet34")
def od_resnet34(num_classes: int = 1000, dropout: float = 0.1, reduction: float = 0.0625,
                kernel_num: int = 1) -> ODResNet:
    return _od_resnet(34, num_classes, dropout, reduction, kernel_num)


@register_model(family="resnet", odconv=True, depth_or_width="50", static_twin="resnet50")
def od_resnet50(num_classes: int = 1000, dropout: float = 0.1, reduction: float = 0.0625,
                kernel_num: int = 1) -> ODResNet:
    return _od_resnet(50, num_classes, dropout, reduction, kernel_num)


@register_model(family="resnet", odconv=True, depth_or_width="101", static_twin="resnet101")
def od_resnet101(num_classes: int = 1000, dropout: float = 0.1, reduction: float = 0.0625,
                 kernel_num: int = 1) -> ODResNet:
    return _od_resnet(101, num_classes, dropout, reduction, kernel_num)
