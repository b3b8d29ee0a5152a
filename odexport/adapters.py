"""Adapters recognise ODConv layers by structure and describe them as an ODConvSpec.

Nothing else in odexport knows a variant's attribute names: a new variant is one registered adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .odconv import ODConvSpec, describe_official


@dataclass(frozen=True)
class Adapter:
    name: str
    matches: Callable[[nn.Module], bool]
    describe: Callable[[nn.Module], ODConvSpec]


_ADAPTERS: list[Adapter] = []


def register_adapter(adapter: Adapter) -> Adapter:
    _ADAPTERS.append(adapter)
    return adapter


def find_adapter(module: nn.Module) -> Adapter | None:
    return next((adapter for adapter in _ADAPTERS if adapter.matches(module)), None)


def _is_official_layout(module: nn.Module) -> bool:
    attention = getattr(module, "attention", None)
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, nn.Parameter)
        and weight.dim() == 5
        and isinstance(attention, nn.Module)
        and all(isinstance(getattr(attention, name, None), nn.Module) for name in ("fc", "bn", "channel_fc"))
        and all(hasattr(module, name) for name in ("in_planes", "out_planes", "kernel_num", "groups"))
    )


register_adapter(Adapter("official", _is_official_layout, describe_official))
