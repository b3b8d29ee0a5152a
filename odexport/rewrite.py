"""Find the ODConv layers of a model and replace each with its lowered, exportable form."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

from .adapters import find_adapter
from .lowering import Lowering, get_lowering
from .odconv import ODConvSpec


@dataclass(frozen=True)
class ODConvLayer:
    """One recognised ODConv layer: where it sits, which adapter read it, and its description."""

    path: str
    adapter: str
    spec: ODConvSpec


def find_odconv_layers(model: nn.Module) -> list[ODConvLayer]:
    """Every ODConv layer of ``model``, outermost first; the inside of a recognised layer is not searched."""
    layers: list[ODConvLayer] = []
    claimed: list[str] = []
    for path, module in model.named_modules():
        if any(path.startswith(prefix + ".") for prefix in claimed):
            continue
        adapter = find_adapter(module)
        if adapter is not None:
            layers.append(ODConvLayer(path, adapter.name, adapter.describe(module)))
            claimed.append(path)
    return layers


def _set_submodule(model: nn.Module, path: str, replacement: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, replacement)


def lower_model(model: nn.Module, lowering: Lowering | str) -> tuple[nn.Module, list[ODConvLayer]]:
    """A copy of ``model`` (eval mode) whose ODConv layers are written with ``lowering``.

    The original model is left untouched.
    """
    lowering = get_lowering(lowering) if isinstance(lowering, str) else lowering
    lowered = copy.deepcopy(model).eval()
    layers = find_odconv_layers(lowered)
    for layer in layers:
        if layer.path == "":
            lowered = lowering.build(layer.spec).eval()
        else:
            _set_submodule(lowered, layer.path, lowering.build(layer.spec).eval())
    return lowered, layers
