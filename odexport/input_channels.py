"""How many channels a model's input has: as asked, else as its first convolution takes, else 3 (RGB)."""

from __future__ import annotations

from torch import nn

from .adapters import AdapterOptions, find_adapter
from .errors import InputError

DEFAULT_CHANNELS = 3


def first_convolution(model: nn.Module) -> tuple[str, int] | None:
    """(path, input channels) of the first convolution in the model's module order (an nn.Conv2d, or a
    dynamic convolution an adapter recognises); None when there is none to read (e.g. TorchScript)."""
    for path, module in model.named_modules():
        adapter = find_adapter(module)
        if adapter is not None:
            # Only the weight shapes are read: either attention BatchNorm choice describes them alike.
            return path, adapter.describe(module, AdapterOptions("apply")).in_channels
        if isinstance(module, nn.Conv2d):
            return path, module.in_channels
    return None


def resolve_channels(model: nn.Module, asked: int | None) -> int:
    """The input channels to export ``model`` with: ``asked`` (checked against the first convolution),
    else what the first convolution takes, else 3."""
    first = first_convolution(model)
    if asked is None:
        return first[1] if first else DEFAULT_CHANNELS
    if asked < 1:
        raise InputError(f"{asked} input channels is not a positive count", hint="e.g. --channels 1 for grey images")
    if first is not None and first[1] != asked:
        path, channels = first
        raise InputError(f"{asked} input channel(s) asked, but the model's first convolution ({path or 'the model'}, "
                         f"{type(model.get_submodule(path)).__name__}) takes {channels}",
                         hint=f"pass --channels {channels}, or leave --channels out to read it from the model")
    return asked
