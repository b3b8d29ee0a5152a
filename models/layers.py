"""What the static and the ODConv twin of an architecture share: how a convolution is made, and the init.

Each family is written once, over a :class:`ConvFactory`; the static model passes :func:`plain_conv`,
the OD model passes :func:`odconv_factory`. Layers that stay static in the official OD models (stems,
downsample shortcuts) call ``plain_conv`` directly.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn

from .odconv import Attention, ODConv2d


class ConvFactory(Protocol):
    """Makes one bias-free 2D convolution (``nn.Conv2d`` or ``ODConv2d``) with the given geometry."""

    def __call__(self, in_planes: int, out_planes: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1) -> nn.Module: ...


def plain_conv(in_planes: int, out_planes: int, kernel_size: int, stride: int = 1, padding: int = 0,
               groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups, bias=False)


def odconv_factory(reduction: float, kernel_num: int) -> ConvFactory:
    """A factory making ``ODConv2d`` layers with the given attention reduction and kernel count."""

    def make(in_planes: int, out_planes: int, kernel_size: int, stride: int = 1, padding: int = 0,
             groups: int = 1) -> ODConv2d:
        return ODConv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups,
                        reduction=reduction, kernel_num=kernel_num)

    return make


def init_weights_(model: nn.Module) -> None:
    """The official initialisation of the zoo models (ResNet and MobileNetV2 code agree on it).

    ``ODConv2d.weight`` is not an ``nn.Conv2d`` and keeps the layer's own init; conv biases (only the
    attention heads have them) are already zero.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def set_temperature(model: nn.Module, temperature: float) -> None:
    """Set the attention temperature of every ODConv layer in ``model``."""
    for m in model.modules():
        if isinstance(m, Attention):
            m.update_temperature(temperature)
