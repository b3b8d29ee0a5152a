"""PyTorch's two ONNX exporters behind one interface, and the choice between them.

``torchscript`` traces the module with the TorchScript tracer (``torch.onnx.export(dynamo=False)``),
deprecated upstream; ``dynamo`` captures it with ``torch.export`` and translates it with onnxscript
(``torch.onnx.export(dynamo=True)``, PyTorch's default since 2.9). Both produce a graph with the same
input and output names, the same symbolic dimension names (batch, height, width) and node names scoped
by module path (odexport.module_names), which is what inspect, verify and profile read. The default and
its measurements: docs/exporters.md.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import onnx
import torch
from torch import nn

from .errors import InputError
from .lowering.registry import dynamo_translations
from .module_names import name_input_dims, name_nodes_by_module

TORCHSCRIPT = "torchscript"
DYNAMO = "dynamo"
DEFAULT_EXPORTER = TORCHSCRIPT
INPUT_NAME = "input"


@dataclass(frozen=True)
class Trace:
    """What an exporter is asked to write: ``module`` run on ``example`` ([B, C, H, W])."""

    module: nn.Module
    example: torch.Tensor
    output_names: tuple[str, ...]
    dynamic_batch: bool
    dynamic_size: bool
    opset: int


@dataclass(frozen=True)
class Exporter:
    """opsets: the ONNX opset versions odexport accepts for this exporter (its graphs are tested at the
    lowest). unavailable(): why this PyTorch cannot run it, or None. fallback: the exporter used instead."""

    name: str
    run: Callable[[Trace], onnx.ModelProto]
    opsets: range
    unavailable: Callable[[], str | None]
    fallback: str | None = None

    @property
    def default_opset(self) -> int:
        return self.opsets[0]


@dataclass(frozen=True)
class ExportOptions:
    """The exporter and opset a conversion uses, validated (made by export_options). note: why the
    exporter asked for was replaced by another, or None."""

    exporter: str
    opset: int
    note: str | None = None


@contextmanager
def _quiet_exporter():
    """The exporters warn about their own deprecations and optional packages (torchvision); none of it
    concerns the user's model."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_torchscript(trace: Trace) -> onnx.ModelProto:
    input_axes: dict[int, str] = {0: "batch"} if trace.dynamic_batch else {}
    if trace.dynamic_size:
        input_axes |= {2: "height", 3: "width"}
    dynamic_axes = {INPUT_NAME: input_axes} if input_axes else {}
    if trace.dynamic_batch:
        dynamic_axes |= {name: {0: "batch"} for name in trace.output_names}
    buffer = io.BytesIO()
    with _quiet_exporter():
        torch.onnx.export(trace.module, (trace.example,), buffer, dynamo=False, opset_version=trace.opset,
                          input_names=[INPUT_NAME], output_names=list(trace.output_names),
                          dynamic_axes=dynamic_axes or None, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(trace: Trace) -> onnx.ModelProto:
    example = trace.example
    if trace.dynamic_batch and example.shape[0] == 1:
        # torch.export makes a dimension of size 1 a constant: a symbolic batch needs a traced batch of 2.
        example = example.repeat(2, 1, 1, 1)
    names = {0: "batch"} if trace.dynamic_batch else {}
    if trace.dynamic_size:
        names |= {2: "height", 3: "width"}
    # Dim.DYNAMIC, not Dim("height"): a named Dim must take every size, and a 7x7 kernel without padding
    # needs height >= 7. The sizes get their names after the export.
    axes = {axis: torch.export.Dim.DYNAMIC for axis in names}
    with _quiet_exporter():
        program = torch.onnx.export(trace.module, (example,), dynamo=True, opset_version=trace.opset,
                                    input_names=[INPUT_NAME], output_names=list(trace.output_names),
                                    dynamic_shapes=(axes,) if axes else None, verbose=False, optimize=True,
                                    custom_translation_table=dynamo_translations())
    model = program.model_proto
    dims = model.graph.input[0].type.tensor_type.shape.dim
    fixed = [name for axis, name in names.items() if not dims[axis].dim_param]
    if fixed:  # Dim.DYNAMIC turns a size the code depends on into a constant without a word
        raise ValueError(f"torch.export made the input's {' and '.join(fixed)} a constant: the model's code "
                         f"depends on it")
    name_nodes_by_module(model)
    name_input_dims(model, names)
    return model


@functools.cache
def torchscript_unavailable() -> str | None:
    """Why this PyTorch cannot export with the TorchScript exporter (it is deprecated and will be
    removed), or None. Probed by exporting a one-op module, once per process."""
    try:
        _export_torchscript(Trace(nn.ReLU(), torch.zeros(1, 1, 2, 2), ("y",), False, False, 17))
    except Exception as error:  # removal may surface as any error type
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


def _onnxscript_missing() -> str | None:
    try:
        import onnxscript  # noqa: F401  (a probe: is it installed? importing it takes seconds)
    except ImportError:
        return "the onnxscript package is not installed"
    return None


# Lowest opsets: the lowerings' graphs (and the ODConv2d function body) are written for opset 17; the
# dynamo exporter translates to opset 18 and converts other versions from it. Highest: what each exporter
# can write in torch 2.13.
EXPORTERS: dict[str, Exporter] = {
    TORCHSCRIPT: Exporter(TORCHSCRIPT, _export_torchscript, range(17, 21), torchscript_unavailable, fallback=DYNAMO),
    DYNAMO: Exporter(DYNAMO, _export_dynamo, range(18, 24), _onnxscript_missing),
}


def export_options(exporter: str | None = None, opset: int | None = None) -> ExportOptions:
    """Check an exporter name and opset; an exporter this PyTorch cannot run is replaced by its fallback,
    with a note saying so."""
    name = (exporter or DEFAULT_EXPORTER).lower()
    if name not in EXPORTERS:
        raise InputError(f"unknown exporter {exporter!r}", hint=f"choose one of: {', '.join(EXPORTERS)}")
    chosen = EXPORTERS[name]
    note = None
    reason = chosen.unavailable()
    if reason is not None and chosen.fallback is not None:
        fallback = EXPORTERS[chosen.fallback]
        if opset is not None and opset not in fallback.opsets:
            opset = None  # chosen for the replaced exporter: the fallback writes its own default
        note = (f"the {name} exporter is not available in this PyTorch ({reason}); exported with "
                f"{fallback.name} instead" + ("" if opset else f" at its opset {fallback.default_opset}"))
        chosen, reason = fallback, fallback.unavailable()
    if reason is not None:
        raise InputError(f"the {chosen.name} exporter cannot run: {reason}",
                         hint="pip install onnxscript, or pass --exporter torchscript")
    if opset is not None and opset not in chosen.opsets:
        raise InputError(f"opset {opset} is outside what the {chosen.name} exporter writes "
                         f"({chosen.opsets[0]} to {chosen.opsets[-1]})",
                         hint=f"pass --opset between {chosen.opsets[0]} and {chosen.opsets[-1]}, or omit it")
    return ExportOptions(chosen.name, opset if opset is not None else chosen.default_opset, note)


def run_exporter(options: ExportOptions, trace: Trace) -> onnx.ModelProto:
    return EXPORTERS[options.exporter].run(trace)
