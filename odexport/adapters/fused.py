"""YOLO-style fused blocks: ODConv + BatchNorm + activation in one module (a detector's ``Conv`` block
made dynamic), keeping the official attention (``weight``, ``attention.fc`` ... ``kernel_fc``) but
naming hyper-parameters the YOLO way (``c1``, ``c2``, ``k``, ``s``, ``p``, ``g``, ``d``) or the
official way, with a BatchNorm2d over the output channels and/or an activation module beside the
attention (any attribute names), applied after the convolution.

The BatchNorm is folded into the kernels and a bias; the activation is kept as the layer's epilogue.
Whether the forward really applies them is for confirmation to say.
"""

from __future__ import annotations

import copy

from torch import nn

from ..odconv import fold_following_batchnorm
from ..odconv.official import describe_official
from .common import hyperparameter, kernel_stack
from .official import OFFICIAL_ATTENTION, official_batchnorm, official_temperature
from .registry import Adapter, AdapterOptions, Requirement, matches_all


def _siblings(module: nn.Module) -> list[nn.Module]:
    """The direct children beside the attention."""
    return [child for name, child in module.named_children() if name != "attention"]


def output_batchnorm(module: nn.Module) -> nn.BatchNorm2d | None:
    """A BatchNorm2d over the layer's output channels beside the attention."""
    out_channels = kernel_stack(module).shape[1]
    return next((child for child in _siblings(module)
                 if isinstance(child, nn.BatchNorm2d) and child.num_features == out_channels), None)


def activation(module: nn.Module) -> nn.Module | None:
    """An activation module (one of torch.nn's) beside the attention."""
    return next((child for child in _siblings(module) if type(child).__module__ == "torch.nn.modules.activation"
                 and not isinstance(child, nn.MultiheadAttention)), None)


class _OfficialView:
    """The attributes describe_official reads, derived from shapes and the YOLO names."""

    def __init__(self, module: nn.Module) -> None:
        weight = kernel_stack(module)
        n, out_channels, in_per_group, k, _ = weight.shape
        in_channels = module.attention.fc.in_channels
        self.weight, self.attention = weight, module.attention
        self.in_planes, self.out_planes, self.kernel_num, self.kernel_size = in_channels, out_channels, n, k
        self.groups = in_channels // in_per_group
        self.stride = hyperparameter(module, "stride")
        self.padding = hyperparameter(module, "padding")
        self.dilation = hyperparameter(module, "dilation", default=1)


REQUIREMENTS = OFFICIAL_ATTENTION + (
    Requirement("a BatchNorm2d over the output channels or an activation module beside the attention",
                lambda m: output_batchnorm(m) is not None or activation(m) is not None),
    Requirement("the hyper-parameters stride and padding (official or YOLO names: s, p)",
                lambda m: hyperparameter(m, "stride") and hyperparameter(m, "padding")),
)


def _describe(module: nn.Module, options: AdapterOptions):
    spec = describe_official(_OfficialView(module), attention_batchnorm=options.attention_batchnorm != "skip")
    batchnorm = output_batchnorm(module)
    return spec if batchnorm is None else fold_following_batchnorm(spec, batchnorm)


def _epilogue(module: nn.Module) -> nn.Module | None:
    act = activation(module)
    return None if act is None else copy.deepcopy(act)


FUSED = Adapter(
    "fused-bn-act", "ODConv + BatchNorm and/or activation in one block (YOLO-style), official attention names",
    matches_all(REQUIREMENTS), _describe, epilogue=_epilogue, temperature=official_temperature,
    attention_batchnorm=official_batchnorm, requirements=REQUIREMENTS,
)
