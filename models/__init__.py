"""The model zoo: the reference ODConv layer, the official ResNet / MobileNetV2 families and their registry.

Importing this package registers every architecture; use :func:`create_model` / :func:`list_models`.
"""

from .init import randomize_
from .mobilenetv2 import MobileNetV2, mobilenetv2_050, mobilenetv2_075, mobilenetv2_100
from .od_mobilenetv2 import ODMobileNetV2, od_mobilenetv2_050, od_mobilenetv2_075, od_mobilenetv2_100
from .od_resnet import ODResNet, od_resnet18, od_resnet34, od_resnet50, od_resnet101
from .odconv import Attention, ODAttentions, ODConv2d
from .registry import ArchInfo, create_model, get_arch, list_models, register_model
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101

__all__ = [
    "ArchInfo",
    "Attention",
    "MobileNetV2",
    "ODAttentions",
    "ODConv2d",
    "ODMobileNetV2",
    "ODResNet",
    "ResNet",
    "create_model",
    "get_arch",
    "list_models",
    "mobilenetv2_050",
    "mobilenetv2_075",
    "mobilenetv2_100",
    "od_mobilenetv2_050",
    "od_mobilenetv2_075",
    "od_mobilenetv2_100",
    "od_resnet18",
    "od_resnet34",
    "od_resnet50",
    "od_resnet101",
    "randomize_",
    "register_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
]
