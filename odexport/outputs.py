"""How a PyTorch model's outputs are named in ONNX: export names them so, and every runner reports them so.

Below export and the backends alike (both need it, and neither may import the other for it).
"""

from __future__ import annotations

import torch


def flatten_outputs(outputs, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """A model's outputs as (name, tensor) in the order the ONNX exporter flattens them: a tensor, or
    tuples, lists and dicts of them, nested. Names are the key path ("p4.0"), empty for a lone tensor."""
    if isinstance(outputs, torch.Tensor):
        return [(prefix, outputs)]
    if isinstance(outputs, dict):
        items = list(outputs.items())
    elif isinstance(outputs, (tuple, list)):
        items = list(enumerate(outputs))
    else:
        raise TypeError(f"a model output of type {type(outputs).__name__} is not a tensor, tuple, list or dict")
    flat = []
    for key, value in items:
        flat += flatten_outputs(value, f"{prefix}.{key}" if prefix else str(key))
    return flat
