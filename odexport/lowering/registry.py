"""The registry of lowerings: named strategies that turn an ODConvSpec into an exportable module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import onnx
from torch import nn

from ..odconv import ODConvSpec
from ..registry import Registry


@dataclass(frozen=True)
class Lowering:
    """A way to write one ODConv layer in exportable operations.

    build(spec) returns a module with ``forward(x: [B, C_in, H, W]) -> [B, C_out, H_out, W_out]`` whose
    trace exports to ONNX (``forward(x, routing: [B, n])`` for a routed spec, or an ExportError from
    build when the lowering cannot write one); ``dynamic_batch`` says whether one export serves every batch size, and
    ``constant_weights`` whether every convolution weight is an initializer (runtimes pre-pack and
    quantize only those). ``finalize_onnx``, when given, rewrites the exported ONNX model before it is
    checked and saved (e.g. to attach function bodies to custom-domain nodes). ``dynamo_translations``:
    {custom torch op: onnxscript function writing its ONNX node}, for the torch.export-based exporter.
    """

    name: str
    summary: str
    build: Callable[[ODConvSpec], nn.Module]
    dynamic_batch: bool
    constant_weights: bool
    finalize_onnx: Callable[[onnx.ModelProto], onnx.ModelProto] | None = None
    dynamo_translations: dict[Callable, Callable] = field(default_factory=dict)


LOWERINGS: Registry[Lowering] = Registry("lowering", also=("auto",), ordered_by_name=True)


def register_lowering(
    name: str,
    summary: str,
    *,
    dynamic_batch: bool,
    constant_weights: bool,
    finalize_onnx: Callable[[onnx.ModelProto], onnx.ModelProto] | None = None,
    dynamo_translations: dict[Callable, Callable] | None = None,
):
    """Decorator: register ``build(spec) -> nn.Module`` under ``name``."""

    def decorate(build: Callable[[ODConvSpec], nn.Module]) -> Callable[[ODConvSpec], nn.Module]:
        LOWERINGS.register(Lowering(name, summary, build, dynamic_batch, constant_weights, finalize_onnx,
                                    dict(dynamo_translations or {})), once=True)
        return build

    return decorate


def dynamo_translations() -> dict[Callable, Callable]:
    """Every lowering's custom-op translations: a graph may mix lowerings, and an unused one costs nothing."""
    return {op: translate for lowering in LOWERINGS for op, translate in lowering.dynamo_translations.items()}


list_lowerings = LOWERINGS.names
get_lowering = LOWERINGS.get
