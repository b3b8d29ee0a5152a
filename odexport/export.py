"""Export a (lowered) PyTorch module to an ONNX file with symbolic batch and, optionally, size, through\neither of PyTorch's exporters (odexport.exporters)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnx
import torch
from torch import nn

from .outputs import flatten_outputs
from .errors import ExportError
from .exporters import ExportOptions, Trace, export_options, run_exporter


@dataclass(frozen=True)
class ExportedGraph:
    path: Path
    input_name: str
    output_names: tuple[str, ...]
    input_shape: tuple[int | str, ...]  # symbolic dims as names, e.g. ("batch", 3, 224, 224)
    output_shapes: tuple[tuple[int | str, ...], ...]
    node_count: int


def value_dims(value_info: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    return tuple(d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim)


def default_output_names(paths: list[str]) -> tuple[str, ...]:
    """Output names from the key paths of a model's outputs: "logits" for a lone tensor, output{i} for a
    flat tuple, the key paths ("p4.0", "p8") when there are dicts."""
    if paths == [""]:
        return ("logits",)
    if all(path.isdigit() for path in paths):
        return tuple(f"output{i}" for i in range(len(paths)))
    return tuple(paths)


def export_onnx(
    module: nn.Module,
    path: Path,
    example: torch.Tensor,
    *,
    dynamic_batch: bool = True,
    dynamic_size: bool = False,
    output_names: tuple[str, ...] | None = None,
    finalize: Callable[[onnx.ModelProto], onnx.ModelProto] | None = None,
    options: ExportOptions | None = None,
) -> ExportedGraph:
    """Export ``module`` traced on ``example`` ([B, C, H, W]) to ``path``; returns what the graph exposes.

    finalize: a rewrite of the traced ONNX model applied before it is checked and saved (a lowering's
    ``finalize_onnx``). options: the exporter and opset [default: export_options()].
    """
    options = options or export_options()
    module = module.eval()
    with torch.no_grad():
        flat = flatten_outputs(module(example))
    if output_names is None:
        output_names = default_output_names([path for path, _ in flat])
    trace = Trace(module, example, tuple(output_names), dynamic_batch, dynamic_size, options.opset)
    try:
        model = run_exporter(options, trace)
    except Exception as error:  # the exporters raise many unrelated types
        raise ExportError(
            f"torch.onnx.export ({options.exporter}) failed: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}",
            hint="rerun with --debug for the traceback and report it with the model; another --exporter may work",
        ) from error

    if finalize is not None:
        model = finalize(model)
    model.producer_name = "odexport"
    model.doc_string = ""
    path.parent.mkdir(parents=True, exist_ok=True)
    return _check_and_save(model, path)


def _check_and_save(model: onnx.ModelProto, path: Path) -> ExportedGraph:
    # check_model(full_check=True) would run shape inference a second time; strict inference plus the
    # structural check is the same check for half the time on large models. All three take the serialised
    # bytes; given the ModelProto, each would serialise it again.
    serialized = model.SerializeToString()
    onnx.checker.check_model(serialized)
    inferred = onnx.shape_inference.infer_shapes(serialized, check_type=True, strict_mode=True)
    path.write_bytes(serialized)
    return ExportedGraph(
        path=path,
        input_name=model.graph.input[0].name,
        output_names=tuple(output.name for output in model.graph.output),
        input_shape=value_dims(inferred.graph.input[0]),
        output_shapes=tuple(value_dims(output) for output in inferred.graph.output),
        node_count=len(model.graph.node),
    )


def simplify_onnx(graph: ExportedGraph) -> ExportedGraph:
    """Simplify the graph in place with onnxsim (constant folding, dead-code and shape-op removal).

    onnxsim's own random-input check is skipped: convert checks parity of the final artifact.
    """
    import onnxsim  # lazy: its import takes a second, and only conversions simplify

    model = onnx.load(graph.path)
    try:
        simplified, _ = onnxsim.simplify(model, check_n=0)
    except Exception as error:
        raise ExportError(
            f"onnxsim could not simplify the graph: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
            hint="rerun with --no-simplify to keep the unsimplified graph",
        ) from error
    simplified.producer_name = model.producer_name
    return _check_and_save(simplified, graph.path)
