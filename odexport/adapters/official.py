"""The official ``ODConv2d`` (OSVAI/ODConv ``modules/odconv.py``), and forks that copy it verbatim.

Structure: a 5-D ``weight`` [n, C_out, C_in/g, k, k] beside an ``attention`` holding ``fc`` (1x1 conv),
``bn`` and at least the ``channel_fc`` head; hyper-parameters ``in_planes``, ``out_planes``,
``kernel_num``, ``groups``, ``stride``, ``padding``, ``dilation``; the temperature a plain attribute
of the attention.
"""

from __future__ import annotations

from torch import nn

from ..odconv import describe_official
from .common import kernel_stack
from .registry import Adapter, AdapterOptions, TemperatureSlot

_ATTENTION_PARTS = ("fc", "bn", "channel_fc")
_HYPERPARAMETERS = ("in_planes", "out_planes", "kernel_num", "groups", "stride", "padding", "dilation")


def has_official_attention(module: nn.Module) -> bool:
    attention = getattr(module, "attention", None)
    return (
        kernel_stack(module) is not None
        and isinstance(attention, nn.Module)
        and all(isinstance(getattr(attention, name, None), nn.Module) for name in _ATTENTION_PARTS)
        and hasattr(attention, "temperature")
    )


def _matches(module: nn.Module) -> bool:
    return has_official_attention(module) and all(hasattr(module, name) for name in _HYPERPARAMETERS)


def official_temperature(module: nn.Module) -> TemperatureSlot:
    return TemperatureSlot(module.attention, "temperature")


def _describe(module: nn.Module, options: AdapterOptions):
    return describe_official(module)


OFFICIAL = Adapter(
    "official", "the official ODConv2d (OSVAI/ODConv), or a verbatim copy under any class name",
    _matches, _describe, temperature=official_temperature,
)
