"""The zoo's registry: every architecture odexport can build, by name.

A builder joins the registry by decorating it with :func:`register_model`; tests and tools iterate
:func:`list_models`, so a new architecture is covered the moment it is registered.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Literal

from torch import nn

from odexport.errors import UnknownArchitectureError

Family = Literal["resnet", "mobilenetv2"]
Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ArchInfo:
    """One registered architecture.

    ``static_twin`` names the architecture with plain convolutions in place of ODConv (a static
    architecture is its own twin). ``depth_or_width`` is the ResNet depth ("18", "50", ...) or the
    MobileNetV2 width multiplier in hundredths ("050", "075", "100").
    """

    name: str
    family: Family
    odconv: bool
    builder: Builder
    static_twin: str
    depth_or_width: str


_REGISTRY: dict[str, ArchInfo] = {}


def register_model(*, family: Family, odconv: bool, depth_or_width: str,
                   static_twin: str | None = None) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under its function name; returns the builder unchanged."""

    def decorator(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        if odconv and static_twin is None:
            raise ValueError(f"ODConv architecture {name!r} needs a static_twin")
        _REGISTRY[name] = ArchInfo(name=name, family=family, odconv=odconv, builder=builder,
                                   static_twin=static_twin or name, depth_or_width=depth_or_width)
        return builder

    return decorator


def list_models(odconv: bool | None = None) -> list[str]:
    """Registered names, by family, static before ODConv, then by size; ``odconv`` keeps only ODConv (True)
    or static (False) ones. The order does not depend on which module registered first."""
    infos = sorted(_REGISTRY.values(), key=lambda a: (a.family, a.odconv, int(a.depth_or_width)))
    return [a.name for a in infos if odconv is None or a.odconv == odconv]


def get_arch(name: str) -> ArchInfo:
    """The registered architecture ``name``; raises :class:`UnknownArchitectureError` if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownArchitectureError(f"unknown architecture {name!r}",
                                       hint=f"{guess}known architectures: {', '.join(list_models())}") from None


def create_model(name: str, *, num_classes: int = 1000, kernel_num: int = 1, reduction: float = 0.0625,
                 dropout: float | None = None) -> nn.Module:
    """Build architecture ``name`` with the official default init (``dropout=None``: the official default).

    Static architectures have no attention, so ``reduction`` is ignored and ``kernel_num`` must be 1.
    """
    info = get_arch(name)
    kwargs: dict[str, object] = {"num_classes": num_classes}
    if dropout is not None:
        kwargs["dropout"] = dropout
    if info.odconv:
        if kernel_num < 1:
            raise ValueError(f"kernel_num must be at least 1, got {kernel_num}")
        kwargs.update(kernel_num=kernel_num, reduction=reduction)
    elif kernel_num != 1:
        twins = [n for n in list_models(odconv=True) if _REGISTRY[n].static_twin == name]
        hint = f"; use {twins[0]!r} for an ODConv model" if twins else ""
        raise ValueError(f"{name!r} is a static architecture (plain convolutions): kernel_num must be 1, "
                         f"got {kernel_num}{hint}")
    return info.builder(**kwargs)
