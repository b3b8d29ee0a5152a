"""Find the ODConv layers of a model and replace each with its lowered, exportable form."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import torch
import torch.fx
from torch import nn

from .adapters import Adapter, AdapterOptions, Resolution, UnrecognisedLayer, dynamic_conv_reason, list_adapters, resolve
from .adapters.unrecognised import closest_adapters
from .errors import InputError
from .lowering import Lowering, get_lowering
from .odconv import ODConvSpec, fold_following_batchnorm


@dataclass(frozen=True)
class ODConvLayer:
    """One recognised ODConv layer: where it sits, which adapter read it, its description, and the path
    of a following BatchNorm folded into it (None when there was none).

    epilogue: what the variant applies after the convolution beyond the spec (an activation), or None;
    temperature: the value of a temperature kept outside the state dict, or None;
    attention_batchnorm: the eval behaviour exported for an attention BatchNorm the variant skips at
    batch 1 ("apply" or "skip"), None when the layer has no such BatchNorm.
    """

    path: str
    adapter: str
    spec: ODConvSpec
    folded_batchnorm: str | None = None
    lowering: str | None = None
    epilogue: nn.Module | None = None
    temperature: float | None = None
    attention_batchnorm: str | None = None
    attempts: tuple = ()  # adapters.Attempt: each adapter tried on the layer, the confirmed one last but untried


def _is_inside(path: str, prefixes: list[str]) -> bool:
    return any(prefix == "" or path.startswith(prefix + ".") for prefix in prefixes)


def _resolved_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module, Resolution]]:
    """(path, module, resolution) of every module some adapter matches by structure, outermost first,
    whether an adapter confirmed it or not; the inside of such a module is not searched."""
    claimed: list[str] = []
    for path, module in model.named_modules():
        if _is_inside(path, claimed):
            continue
        resolution = resolve(module)
        if resolution.matched:
            claimed.append(path)
            yield path, module, resolution


def _recognised_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module, Resolution]]:
    """(path, module, resolution) of every module an adapter claims (its description confirmed)."""
    return ((path, module, resolution) for path, module, resolution in _resolved_modules(model)
            if resolution.adapter is not None)


def find_odconv_layers(model: nn.Module, options: AdapterOptions | None = None) -> list[ODConvLayer]:
    """Every ODConv layer of ``model``, outermost first; the inside of a recognised layer is not searched.

    Raises InputError when a layer's variant skips its attention BatchNorm at batch 1 and
    ``options.attention_batchnorm`` does not say which eval behaviour to export.
    """
    options = options or AdapterOptions()
    recognised = list(_recognised_modules(model))
    if options.attention_batchnorm is None:
        _check_decided([path for path, _, resolution in recognised if resolution.batch_dependent])
    return [_describe_layer(path, module, resolution, options) for path, module, resolution in recognised]


def _check_decided(undecided: list[str]) -> None:
    if undecided:
        undecided = [path or "(the model)" for path in undecided]
        raise InputError(
            f"{len(undecided)} layer(s) ({', '.join(undecided[:3])}{', ...' if len(undecided) > 3 else ''}) "
            "skip their attention BatchNorm at batch 1 and apply it at larger batches, so the exported graph "
            "must follow one of the two eval behaviours",
            hint="choose one: attention_batchnorm='apply' / --attention-batchnorm apply (running statistics, "
                 "what batch > 1 computes) or 'skip' (what batch 1 computes)")


def _describe_layer(path: str, module: nn.Module, resolution: Resolution, options: AdapterOptions) -> ODConvLayer:
    adapter: Adapter = resolution.adapter
    slot = adapter.temperature(module) if adapter.temperature else None
    return ODConvLayer(
        path, adapter.name, resolution.describe(module, options),
        epilogue=adapter.epilogue(module) if adapter.epilogue else None,
        temperature=None if slot is None else slot.value,
        attention_batchnorm=options.attention_batchnorm if resolution.batch_dependent else None,
        attempts=resolution.attempts,
    )


def batch_dependent_layers(model: nn.Module) -> list[str]:
    """Paths of the recognised layers that skip their attention BatchNorm at batch 1 and apply it at larger
    batches, as confirmation found (exporting them needs AdapterOptions.attention_batchnorm)."""
    return [path for path, _, resolution in _recognised_modules(model) if resolution.batch_dependent]


def odconv_layer_paths(model: nn.Module) -> list[str]:
    """The paths of the layers an adapter recognises, outermost first (nothing is described)."""
    return [path for path, _, _ in _recognised_modules(model)]


def find_unrecognised_layers(model: nn.Module) -> list[UnrecognisedLayer]:
    """Modules outside recognised layers that look like a dynamic convolution (adapters.unrecognised), and
    modules whose structure some adapter matches but whose forward no adapter's description reproduces."""
    claimed: list[str] = []
    found: list[UnrecognisedLayer] = []
    for path, module in model.named_modules():
        if _is_inside(path, claimed):
            continue
        resolution = resolve(module)
        if resolution.adapter is not None:
            claimed.append(path)
            continue
        reason = _unrecognised_reason(module, resolution)
        if reason is not None:
            found.append(UnrecognisedLayer(path or "(the model)", f"{type(module).__module__}.{type(module).__qualname__}",
                                           reason, resolution.attempts))
            claimed.append(path)  # its parts are not reported again
    return found


def _unrecognised_reason(module: nn.Module, resolution: Resolution) -> str | None:
    if resolution.matched:
        return f"matches the structure of {len(resolution.attempts)} adapter(s), but no description of it " \
               f"reproduces its forward: {resolution.refusal()}"
    reason = dynamic_conv_reason(module)
    if reason is None:
        return None
    closest = closest_adapters(module, list_adapters())
    return reason if closest is None else f"{reason}; closest adapters: {closest}"


def set_temperatures(model: nn.Module, value: float) -> list[str]:
    """Set the temperature of every recognised layer that keeps one outside the state dict; -> their paths."""
    if not value > 0:
        raise InputError(f"temperature {value} is not positive", hint="attention logits are divided by it, e.g. 1.0")
    paths = []
    for path, module, resolution in _recognised_modules(model):
        adapter = resolution.adapter
        slot = adapter.temperature(module) if adapter.temperature else None
        if slot is not None:
            slot.set(float(value))
            paths.append(path)
    if not paths:
        raise InputError("temperature given, but no recognised layer keeps a temperature",
                         hint="leave the temperature out for this model")
    return paths


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
    options: AdapterOptions | None = None,
) -> tuple[nn.Module, list[ODConvLayer]]:
    """A copy of ``model`` (eval mode) whose ODConv layers are written with ``lowering`` (a Lowering, its
    name, or a per-layer choice: ODConvLayer -> Lowering, called after folding, in model order).

    With ``fold_batchnorms``, a BatchNorm that only consumes an ODConv's output is folded into the
    layer's kernels and bias and replaced by Identity. The original model is left untouched.
    """
    if isinstance(lowering, str):
        lowering = get_lowering(lowering)
    choose = (lambda layer: lowering) if isinstance(lowering, Lowering) else lowering
    # Read from the model itself, whose layers were confirmed already (a copy would be confirmed again).
    layers = find_odconv_layers(model, options)
    lowered = copy.deepcopy(model).eval()
    if fold_batchnorms:
        following = find_following_batchnorms(lowered, [layer.path for layer in layers])
        for index, layer in enumerate(layers):
            bn_path = following.get(layer.path)
            # A BatchNorm after the layer's activation cannot move before it.
            if bn_path is not None and layer.epilogue is None:
                spec = fold_following_batchnorm(layer.spec, lowered.get_submodule(bn_path))
                layers[index] = replace(layer, spec=spec, folded_batchnorm=bn_path)
                _set_submodule(lowered, bn_path, nn.Identity())
    for index, layer in enumerate(layers):
        chosen = choose(layer)
        layers[index] = replace(layer, lowering=chosen.name)
        replacement = chosen.build(layer.spec)
        if layer.epilogue is not None:
            replacement = nn.Sequential(replacement, copy.deepcopy(layer.epilogue))
        if layer.path == "":
            lowered = replacement.eval()
        else:
            _set_submodule(lowered, layer.path, replacement.eval())
    return lowered, layers


def odconv_input_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """{ODConv layer path: shape of the input it receives} for one forward pass of ``example``."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for layer_path in odconv_layer_paths(model):
        module = model.get_submodule(layer_path) if layer_path else model

        def record(_module, args, path=layer_path):
            shapes[path] = tuple(args[0].shape)

        handles.append(module.register_forward_pre_hook(record))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
    return shapes
