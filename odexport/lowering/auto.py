"""`auto`: a per-layer choice among the registered lowerings, by a documented rule.

- A dynamic batch: `decomposed` for every layer (the only dynamic-batch form whose convolution weights
  stay constants, which runtimes pre-pack and quantize).
- A fixed batch: `dynamic-weight` where a run-time kernel is cheap or the alternative is expensive,
  `decomposed` elsewhere. From the per-layer costs in PERF-NOTES (OpenVINO, this CPU, batch 1): a
  run-time kernel costs about what a static one does while the kernel is small next to the activations
  (early layers, up to about 64x64x3x3 weights), and 2-3x a static conv once the kernel is large
  (deep layers), where im2col with constant weights wins. With kernel_num n > 1, decomposed runs n
  stacked kernels (n times the multiply-adds), so such layers take dynamic-weight.

The performance work (issue 7) replaces this rule with timings measured on the target.
"""

from __future__ import annotations

from typing import Callable

from ..odconv import ODConvSpec
from .registry import Lowering, get_lowering, list_lowerings

AUTO = "auto"
# Weights of one kernel (C_out * C_in/g * k * k) up to which a run-time kernel is as cheap as a static one.
SMALL_KERNEL_WEIGHTS = 64 * 64 * 3 * 3


def choose_for_layer(spec: ODConvSpec, *, dynamic_batch: bool) -> str:
    if dynamic_batch:
        return "decomposed"
    if spec.kernel_num > 1 or spec.weight[0].numel() <= SMALL_KERNEL_WEIGHTS:
        return "dynamic-weight"
    return "decomposed"


def lowering_names() -> list[str]:
    """Every name --lowering accepts."""
    return list_lowerings() + [AUTO]


def layer_chooser(name: str, *, dynamic_batch: bool) -> Callable[[ODConvSpec], Lowering]:
    """spec -> the Lowering that writes that layer, for a lowering name or "auto"."""
    if name == AUTO:
        return lambda spec: get_lowering(choose_for_layer(spec, dynamic_batch=dynamic_batch))
    lowering = get_lowering(name)
    return lambda spec: lowering
