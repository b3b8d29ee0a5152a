"""Modules that look like a dynamic convolution but that no adapter recognises.

Exporting such a module as it is would trace whatever branch the example input takes, with the batch
folded into convolution groups: a graph that is wrong at another batch size, silently. So it is an
error, with a hint on writing an adapter (docs/adapters.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

_DYNAMIC_NAME = re.compile(r"dynamic|^cond|condconv|odconv|dyconv|omni", re.IGNORECASE)


@dataclass(frozen=True)
class UnrecognisedLayer:
    """path and type (module.qualname) of the layer; reason: why it looks dynamic and what the adapters
    that came closest missed, or the confirmation errors of those that matched its structure;
    attempts: those confirmations (adapters.confirmation.Attempt), empty when none matched."""

    path: str
    type: str
    reason: str
    attempts: tuple = ()


def closest_adapters(module: nn.Module, adapters, limit: int = 2) -> str | None:
    """What the adapters that came closest to matching ``module`` by structure miss, or None when none
    met even their first requirement."""
    gaps = sorted(((adapter.structure_gap(module), adapter.name) for adapter in adapters if adapter.requirements),
                  key=lambda gap: -gap[0][0])
    near = [f"{name} needs {what}" for (met, what), name in gaps[:limit] if met > 0 and what is not None]
    return "; ".join(near) if near else None


def dynamic_conv_reason(module: nn.Module) -> str | None:
    """Why ``module`` looks like a dynamic convolution, or None.

    - it owns a parameter of 5 or more dimensions (a stack of kernels);
    - it is not a torch.nn class, owns a weight of 2 or more dimensions, and has submodules beside it
      (an attention or routing branch that computes the kernel at run time);
    - its class name says so (dynamic, CondConv, ODConv, DyConv) and it owns parameters.
    """
    own = dict(module.named_parameters(recurse=False))
    stacked = next((name for name, p in own.items() if p.dim() >= 5), None)
    if stacked is not None:
        return f"owns a {own[stacked].dim()}-D parameter '{stacked}' {list(own[stacked].shape)} (a stack of kernels)"
    custom = not type(module).__module__.startswith("torch.")
    weight = own.get("weight")
    if custom and weight is not None and weight.dim() >= 2 and any(True for _ in module.children()):
        children = ", ".join(name for name, _ in module.named_children())
        return f"owns a {weight.dim()}-D 'weight' beside submodules ({children}) that may compute it at run time"
    if own and _DYNAMIC_NAME.search(type(module).__name__):
        return f"its class name {type(module).__name__} names a dynamic convolution"
    return None
