"""Adapters: recognise a dynamic convolution by structure and describe it as an ODConvSpec.

One file per variant; they are registered here, the most specific first (a fused ODConv + BatchNorm +
activation block before the bare official layer; the routed CondConv before the self-routed one). An
adapter claims a layer only once its description reproduces the layer's forward (confirmation.py), so
a layer that matches a specific adapter's structure but not its behaviour falls to the next one.
docs/adapters.md says how to write one.
"""

from .condconv import CONDCONV
from .condconv_routed import CONDCONV_ROUTED
from .dyconv import DYCONV
from .fused import FUSED
from .linear_heads import LINEAR_HEADS
from .official import OFFICIAL
from .confirmation import Attempt, Resolution, find_adapter, resolve
from .registry import (
    ATTENTION_BATCHNORM_CHOICES,
    Adapter,
    AdapterOptions,
    Requirement,
    TemperatureSlot,
    list_adapters,
    matches_all,
    matching_adapters,
    register_adapter,
    unregister_adapter,
)
from .unrecognised import UnrecognisedLayer, dynamic_conv_reason

for _adapter in (FUSED, OFFICIAL, LINEAR_HEADS, DYCONV, CONDCONV_ROUTED, CONDCONV):
    register_adapter(_adapter)

__all__ = [
    "ATTENTION_BATCHNORM_CHOICES", "Adapter", "AdapterOptions", "Attempt", "Requirement", "Resolution",
    "TemperatureSlot", "UnrecognisedLayer", "dynamic_conv_reason", "find_adapter", "list_adapters", "matches_all",
    "matching_adapters", "register_adapter", "resolve", "unregister_adapter",
]
