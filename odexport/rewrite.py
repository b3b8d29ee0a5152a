"""Find the ODConv layers of a model and replace each with its lowered, exportable form."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.fx
from torch import nn

from .adapters import find_adapter
from .lowering import Lowering, get_lowering
from .odconv import ODConvSpec, fold_following_batchnorm


@dataclass(frozen=True)
class ODConvLayer:
    """One recognised ODConv layer: where it sits, which adapter read it, its description, and the path
    of a following BatchNorm folded into it (None when there was none)."""

    path: str
    adapter: str
    spec: ODConvSpec
    folded_batchnorm: str | None = None
    lowering: str | None = None


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


class _LeafTracer(torch.fx.Tracer):
    """Traces a model's wiring without entering ODConv layers."""

    def __init__(self, leaves: set[str]) -> None:
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return qualified_name in self.leaves or super().is_leaf_module(module, qualified_name)


def find_following_batchnorms(model: nn.Module, layer_paths: list[str]) -> dict[str, str]:
    """{ODConv path: BatchNorm path} where the BatchNorm is the only consumer of the ODConv's output.

    Reads the wiring with torch.fx; a model fx cannot trace gets no folding (an empty dict), which
    changes speed, never results.
    """
    try:
        graph = _LeafTracer(set(layer_paths)).trace(model)
    except Exception:
        return {}
    pairs = {}
    for node in graph.nodes:
        if node.op != "call_module" or node.target not in layer_paths or len(node.users) != 1:
            continue
        (user,) = node.users
        if user.op == "call_module" and isinstance(model.get_submodule(user.target), nn.BatchNorm2d):
            pairs[node.target] = user.target
    return pairs


def _set_submodule(model: nn.Module, path: str, replacement: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, replacement)


def lower_model(
    model: nn.Module,
    lowering: Lowering | str | Callable[[ODConvLayer], Lowering],
    *,
    fold_batchnorms: bool = True,
) -> tuple[nn.Module, list[ODConvLayer]]:
    """A copy of ``model`` (eval mode) whose ODConv layers are written with ``lowering`` (a Lowering, its
    name, or a per-layer choice: ODConvLayer -> Lowering, called after folding, in model order).

    With ``fold_batchnorms``, a BatchNorm that only consumes an ODConv's output is folded into the
    layer's kernels and bias and replaced by Identity. The original model is left untouched.
    """
    if isinstance(lowering, str):
        lowering = get_lowering(lowering)
    choose = (lambda layer: lowering) if isinstance(lowering, Lowering) else lowering
    lowered = copy.deepcopy(model).eval()
    layers = find_odconv_layers(lowered)
    if fold_batchnorms:
        following = find_following_batchnorms(lowered, [layer.path for layer in layers])
        for index, layer in enumerate(layers):
            bn_path = following.get(layer.path)
            if bn_path is not None:
                spec = fold_following_batchnorm(layer.spec, lowered.get_submodule(bn_path))
                layers[index] = replace(layer, spec=spec, folded_batchnorm=bn_path)
                _set_submodule(lowered, bn_path, nn.Identity())
    for index, layer in enumerate(layers):
        chosen = choose(layer)
        layers[index] = replace(layer, lowering=chosen.name)
        if layer.path == "":
            lowered = chosen.build(layer.spec).eval()
        else:
            _set_submodule(lowered, layer.path, chosen.build(layer.spec).eval())
    return lowered, layers


def odconv_input_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """{ODConv layer path: shape of the input it receives} for one forward pass of ``example``."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for layer in find_odconv_layers(model):
        module = model.get_submodule(layer.path) if layer.path else model

        def record(_module, args, path=layer.path):
            shapes[path] = tuple(args[0].shape)

        handles.append(module.register_forward_pre_hook(record))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
    return shapes
