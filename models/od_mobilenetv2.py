"""ODConv MobileNetV2 as in the official repository (``models/od_mobilenetv2.py``).

Every convolution except the stem is an ODConv: the expansion and projection 1x1s, the depthwise 3x3s
(which therefore have no filter attention) and the final 1x1.
"""

from __future__ import annotations

from .layers import odconv_factory, set_temperature
from .mobilenetv2 import MobileNetV2
from .registry import register_model


class ODMobileNetV2(MobileNetV2):
    """MobileNetV2 with ODConv layers; x: [B, 3, H, W] -> logits [B, num_classes]."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2,
                 reduction: float = 0.0625, kernel_num: int = 1) -> None:
        super().__init__(num_classes=num_classes, width_mult=width_mult, dropout=dropout,
                         conv=odconv_factory(reduction, kernel_num))

    def net_update_temperature(self, temperature: float) -> None:
        """Set the attention temperature of every ODConv layer (official name)."""
        set_temperature(self, temperature)


@register_model(family="mobilenetv2", odconv=True, depth_or_width="050", static_twin="mobilenetv2_050")
def od_mobilenetv2_050(num_classes: int = 1000, dropout: float = 0.2, reduction: float = 0.0625,
                       kernel_num: int = 1) -> ODMobileNetV2:
    return ODMobileNetV2(num_classes, 0.5, dropout, reduction, kernel_num)


@register_model(family="mobilenetv2", odconv=True, depth_or_width="075", static_twin="mobilenetv2_075")
def od_mobilenetv2_075(num_classes: int = 1000, dropout: float = 0.2, reduction: float = 0.0625,
                       kernel_num: int = 1) -> ODMobileNetV2:
    return ODMobileNetV2(num_classes, 0.75, dropout, reduction, kernel_num)


@register_model(family="mobilenetv2", odconv=True, depth_or_width="100", static_twin="mobilenetv2_100")
def od_mobilenetv2_100(num_classes: int = 1000, dropout: float = 0.2, reduction: float = 0.0625,
                       kernel_num: int = 1) -> ODMobileNetV2:
    return ODMobileNetV2(num_classes, 1.0, dropout, reduction, kernel_num)
