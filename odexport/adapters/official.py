"""The official ``ODConv2d`` (OSVAI/ODConv ``modules/odconv.py``), and forks that copy it verbatim.

Structure: a 5-D ``weight`` [n, C_out, C_in/g, k, k] beside an ``attention`` holding ``fc`` (1x1 conv),
``bn`` and at least the ``channel_fc`` head; hyper-parameters ``in_planes``, ``out_planes``,
``kernel_num``, ``groups``, ``stride``, ``padding``, ``dilation``; the temperature a plain attribute
of the attention. Some forks keep ``attention.bn`` in the state dict but never apply it: confirmation
finds that, and the description then leaves it out.
"""

from __future__ import annotations

from torch import nn

from ..odconv import describe_official
from .common import kernel_stack
from .registry import Adapter, AdapterOptions, Requirement, TemperatureSlot, matches_all

_HYPERPARAMETERS = ("in_planes", "out_planes", "kernel_num", "groups", "stride", "padding", "dilation")

OFFICIAL_ATTENTION = (
    Requirement("a 5-D parameter 'weight' [n, C_out, C_in/g, k, k] (the kernel stack)",
                lambda m: kernel_stack(m) is not None),
    Requirement("a child 'attention'", lambda m: isinstance(m.attention, nn.Module)),
    *(Requirement(f"attention.{name}, a module", lambda m, name=name: isinstance(getattr(m.attention, name), nn.Module))
      for name in ("fc", "bn", "channel_fc")),
    Requirement("attention.temperature", lambda m: hasattr(m.attention, "temperature")),
)
REQUIREMENTS = OFFICIAL_ATTENTION + tuple(
    Requirement(f"the hyper-parameter '{name}'", lambda m, name=name: hasattr(m, name)) for name in _HYPERPARAMETERS)

has_official_attention = matches_all(OFFICIAL_ATTENTION)


def official_temperature(module: nn.Module) -> TemperatureSlot:
    return TemperatureSlot(module.attention, "temperature")


def official_batchnorm(module: nn.Module) -> nn.Module:
    return module.attention.bn


def _describe(module: nn.Module, options: AdapterOptions):
    return describe_official(module, attention_batchnorm=options.attention_batchnorm != "skip")


OFFICIAL = Adapter(
    "official", "the official ODConv2d (OSVAI/ODConv), or a verbatim copy under any class name",
    matches_all(REQUIREMENTS), _describe, temperature=official_temperature, attention_batchnorm=official_batchnorm,
    requirements=REQUIREMENTS,
)
