"""YOLO-style fused blocks: ODConv + BatchNorm + activation in one module (a detector's ``Conv`` block
made dynamic), keeping the official state-dict names (``weight``, ``attention.fc`` ... ``kernel_fc``)
but naming hyper-parameters the YOLO way (``c1``, ``c2``, ``k``, ``s``, ``p``, ``g``, ``d``), with a
``bn`` BatchNorm2d and an ``act`` module applied after the convolution.

The BatchNorm is folded into the kernels and a bias; the activation is kept as the layer's epilogue.
"""

from __future__ import annotations

import copy

from torch import nn

from ..odconv import fold_following_batchnorm
from ..odconv.official import describe_official
from .common import hyperparameter, kernel_stack
from .official import has_official_attention, official_temperature
from .registry import Adapter, AdapterOptions


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


def _matches(module: nn.Module) -> bool:
    return (has_official_attention(module) and isinstance(getattr(module, "bn", None), nn.BatchNorm2d)
            and getattr(module, "bn").num_features == kernel_stack(module).shape[1])


def _describe(module: nn.Module, options: AdapterOptions):
    spec = describe_official(_OfficialView(module))
    return fold_following_batchnorm(spec, module.bn)


def _epilogue(module: nn.Module) -> nn.Module | None:
    act = getattr(module, "act", None)
    return copy.deepcopy(act) if isinstance(act, nn.Module) and not isinstance(act, nn.Identity) else None


FUSED = Adapter(
    "fused-bn-act", "ODConv + BatchNorm + activation in one block (YOLO-style), official state-dict names",
    _matches, _describe, epilogue=_epilogue, temperature=official_temperature,
)
