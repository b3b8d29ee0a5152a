"""Take layers no adapter describes through the generic path, confirmed by behaviour, or refuse them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ..adapters import UnrecognisedLayer
from ..errors import InputError
from ..outputs import flatten_outputs
from .layer import GenericDynamicConv, UnhandledLayer, learn_folds, record_convolutions

# The generic form must reproduce the layer to this relative error (max |error| / max |layer output|).
RELATIVE_TOLERANCE = 1e-4
# Layer inputs are captured at this batch; 1 and 2 teach the folds, 3 checks the batch-1 trace.
PROBE_BATCH = 3


@dataclass(frozen=True)
class GenericLayer:
    """A layer exported by the generic path. reason: why it looked like a dynamic convolution;
    folded_convolutions: its conv2d calls that fold the batch into groups (written per sample)."""

    path: str
    type: str
    reason: str
    folded_convolutions: int

    def record(self) -> dict:
        """The layer as the manifest and inspect show it (no lowering or BatchNorm folding applies)."""
        return {"path": self.path, "type": self.type, "lowering": "generic",
                "batch_folded_convolutions": self.folded_convolutions, "found_because": self.reason}


def take_generic_path(lowered: nn.Module, model: nn.Module, found: list[UnrecognisedLayer],
                      example: Tensor) -> tuple[nn.Module, list[GenericLayer]]:
    """``lowered`` (a lowered copy of ``model``) with each ``found`` layer replaced by its generic form;
    -> (the module, now a new one if the whole model was found, and the layers taken).

    example: [B, C, H, W], the model's input (its batch is not used). Raises InputError naming the first
    layer the generic path cannot take.
    """
    taken, refused = _generic_forms(lowered, model, found, example)
    if refused:
        layer = refused[0]
        raise InputError(
            f"{len(refused)} module(s) look like a dynamic convolution that no odexport adapter recognises and "
            f"that the generic path cannot export with a dynamic batch: {layer.path} ({layer.type}) {layer.reason}",
            hint="write an adapter (matches + describe -> ODConvSpec) and register it with "
                 "odexport.adapters.register_adapter: see docs/adapters.md")
    for layer, generic in taken:
        lowered = _replace(lowered, _module_path(layer.path), generic)
    return lowered, [layer for layer, _ in taken]


def model_fails(found: list[UnrecognisedLayer], error: Exception) -> InputError:
    """The error for a model that fails in PyTorch while it holds layers no adapter recognises: those
    layers are the likely cause, so the first is named with why no adapter took it."""
    first = found[0]
    return InputError(
        f"{first.path} ({first.type}) {first.reason}; the model fails in PyTorch when run to probe it for the "
        f"generic path ({type(error).__name__}: {_first_line(error)})",
        hint="check that the model runs in PyTorch at this input size (--imgsz, --channels); "
             "docs/adapters.md shows how to write an adapter")


def probe_generic_path(model: nn.Module, found: list[UnrecognisedLayer],
                       example: Tensor) -> tuple[list[GenericLayer], list[UnrecognisedLayer]]:
    """Which ``found`` layers the generic path takes and which it refuses (the reason says why)."""
    taken, refused = _generic_forms(model, model, found, example)
    return [layer for layer, _ in taken], refused


def _generic_forms(lowered, model, found, example):
    if not found:
        return [], []
    try:
        inputs = _capture_inputs(model, [_module_path(layer.path) for layer in found], example)
    except Exception as error:  # the user's model itself does not run: no layer can be probed
        raise model_fails(found, error) from None
    taken, refused = [], []
    for layer in found:
        path = _module_path(layer.path)
        if path not in inputs:
            continue  # never called: nothing of it reaches the exported graph
        try:
            generic = generic_form(_submodule(lowered, path), _submodule(model, path), *inputs[path])
        except UnhandledLayer as why:
            refused.append(replace(layer, reason=f"{layer.reason}; the generic path cannot take it: {why}"))
            continue
        except Exception as error:  # the layer's own code fails at another batch: not batch-generic
            refused.append(replace(layer, reason=f"{layer.reason}; the generic path cannot take it: running it "
                                                 f"failed ({type(error).__name__}: {_first_line(error)})"))
            continue
        taken.append((GenericLayer(layer.path, layer.type, layer.reason, sum(generic.folds)), generic))
    return taken, refused


def generic_form(layer: nn.Module, reference: nn.Module, args: tuple, kwargs: dict) -> GenericDynamicConv:
    """``layer`` with its batch-folding convolutions written per sample, once it reproduces ``reference``
    (the original layer) at batch 1 and 2, and its trace at batch 1 reproduces it at batch 3.

    args, kwargs: one call of the layer at PROBE_BATCH. Raises UnhandledLayer saying why not.
    """
    folds = learn_folds(record_convolutions(layer, *_at_batch((args, kwargs), 1)),
                        record_convolutions(layer, *_at_batch((args, kwargs), 2)))
    generic = GenericDynamicConv(layer, folds).eval()
    with torch.no_grad():
        for batch in (1, 2):
            call = _at_batch((args, kwargs), batch)
            _check_close(generic(*call[0], **call[1]), reference(*call[0], **call[1]), f"at batch {batch}")
        traced = _trace(generic, *_at_batch((args, kwargs), 1))
        try:
            got = traced(*(arg for arg in args if isinstance(arg, Tensor)))
        except Exception as error:  # a shape baked into the trace fails in many ways
            raise UnhandledLayer(f"its trace at batch 1 fails at batch {PROBE_BATCH} "
                                 f"({type(error).__name__}: {_first_line(error)})")
        _check_close(got, reference(*args, **kwargs), f"when traced at batch 1 and run at batch {PROBE_BATCH}")
    return generic


class _TensorArguments(nn.Module):
    """The layer called with its tensor arguments only; the others are kept as they were given."""

    def __init__(self, layer: nn.Module, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.layer, self.args, self.kwargs = layer, args, kwargs

    def forward(self, *tensors):
        given = iter(tensors)
        return self.layer(*(next(given) if isinstance(arg, Tensor) else arg for arg in self.args), **self.kwargs)


def _trace(generic: GenericDynamicConv, args: tuple, kwargs: dict):
    tensors = tuple(arg for arg in args if isinstance(arg, Tensor))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about every shape it keeps; the check decides
        try:
            return torch.jit.trace(_TensorArguments(generic, args, kwargs), tensors, check_trace=False)
        except Exception as error:
            raise UnhandledLayer(f"it cannot be traced ({type(error).__name__}: "
                                 f"{str(error).splitlines()[0] if str(error) else ''})") from None


def _check_close(got, want, when: str) -> None:
    got, want = flatten_outputs(got), flatten_outputs(want)
    if len(got) != len(want):
        raise UnhandledLayer(f"its generic form gives {len(got)} output(s) instead of {len(want)} {when}")
    for (name, mine), (_, theirs) in zip(got, want):
        if mine.shape != theirs.shape:
            raise UnhandledLayer(f"its generic form gives shape {list(mine.shape)} instead of {list(theirs.shape)} "
                                 f"{when}")
        scale = float(theirs.abs().max()) if theirs.numel() else 0.0
        error = float((mine - theirs).abs().max()) / max(scale, 1e-30) if theirs.numel() else 0.0
        if not error < RELATIVE_TOLERANCE:
            raise UnhandledLayer(f"its generic form differs from it {when} (relative error {error:.2g}"
                                 f"{f' in output {name}' if name else ''})")


def _capture_inputs(model: nn.Module, paths: list[str], example: Tensor) -> dict[str, tuple[tuple, dict]]:
    """{path: (args, kwargs) of the module's first call} in one forward pass of seeded random inputs
    [PROBE_BATCH, C, H, W] shaped like ``example``."""
    calls: dict[str, tuple[tuple, dict]] = {}
    handles = []
    for path in paths:
        def record(_module, args, kwargs, path=path):
            calls.setdefault(path, (args, kwargs))

        handles.append(_submodule(model, path).register_forward_pre_hook(record, with_kwargs=True))
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(PROBE_BATCH, *example.shape[1:], generator=generator, dtype=torch.float32)
    try:
        with torch.no_grad():
            model.eval()(probe)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else ""


def _at_batch(value, batch: int):
    """value with every tensor of PROBE_BATCH samples cut to its first ``batch``."""
    if isinstance(value, Tensor):
        return value[:batch] if value.dim() and value.shape[0] == PROBE_BATCH else value
    if isinstance(value, (tuple, list)):
        return type(value)(_at_batch(item, batch) for item in value)
    if isinstance(value, dict):
        return {key: _at_batch(item, batch) for key, item in value.items()}
    return value


def _module_path(reported: str) -> str:
    return "" if reported == "(the model)" else reported  # find_unrecognised_layers names the root so


def _submodule(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path) if path else model


def _replace(model: nn.Module, path: str, replacement: nn.Module) -> nn.Module:
    if not path:
        return replacement
    parent_path, _, name = path.rpartition(".")
    setattr(_submodule(model, parent_path), name, replacement)
    return model
