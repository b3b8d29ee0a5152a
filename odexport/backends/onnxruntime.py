"""ONNX Runtime: its runner, the `onnx` and `onnxruntime` targets (fp16 conversion, QDQ int8
quantization, offline graph optimisation), exposing intermediate tensors for localisation and per-node
timings for profiling."""

from __future__ import annotations

import json
import logging
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

from ..lowering.custom_op import OP_TYPE
from ..precisions import get_precision
from .base import MODEL_STEM, GraphNode, NodeTime, RunOptions, Runner, WriteRequest, timing_calibration
from .graph import onnx_io, onnx_metadata, read_onnx_graph, with_outputs
from .registry import Backend, Target, register_backend, register_target

NAME = "onnxruntime"
# Operator types holding a convolution after quantization.
_CONVOLUTIONS = ("Conv", "QLinearConv", "ConvInteger")


class OnnxRuntimeRunner:
    """ONNX Runtime on the CPU."""

    name = NAME

    def __init__(self, path: Path, *, threads: int | None = None, profile_prefix: str | None = None) -> None:
        """profile_prefix: write ONNX Runtime's per-node profiling JSON to files starting with it (see
        end_profiling)."""
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(list(self.output_names), feed)))

    def end_profiling(self) -> Path:
        """Stop profiling (enabled by profile_prefix) and return the JSON file of events written so far."""
        return Path(self.session.end_profiling())


# --- writing the `onnx` and `onnxruntime` targets ---------------------------------------------------------

def _as_exported(onnx_path: Path, request: WriteRequest) -> onnx.ModelProto:
    return onnx.load(str(onnx_path))


def _float16(onnx_path: Path, request: WriteRequest) -> onnx.ModelProto:
    """float16 weights and arithmetic where ONNX Runtime has fp16 kernels; inputs and outputs stay float32,
    so callers feed the same arrays."""
    # The converter does not enter function bodies: a custom-op node keeps float32 (behind Casts).
    return convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True,
                                    op_block_list=[*DEFAULT_OP_BLOCK_LIST, OP_TYPE])


def _int8(onnx_path: Path, request: WriteRequest) -> onnx.ModelProto:
    calibration = request.calibration_batches()
    quantized = onnx_path.with_name(f"{onnx_path.stem}.int8.onnx")
    with request.reporter.progress("calibrating", len(calibration)) as advance:
        quantize_onnx_int8(onnx_path, quantized, calibration, request.input_name, advance)
    return onnx.load(str(quantized))


# What writing an ONNX file at each precision does (the precisions the ONNX targets write).
_WRITE_AT: dict[str, Callable[[Path, WriteRequest], onnx.ModelProto]] = {
    "fp32": _as_exported, "fp16": _float16, "int8": _int8}


def _with_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> onnx.ModelProto:
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=key, value=value)
    return model


def write_onnx(onnx_path: Path, out_dir: Path, request: WriteRequest) -> Path:
    destination = out_dir / f"{MODEL_STEM}.onnx"
    onnx.save(_with_metadata(_WRITE_AT[request.precision](onnx_path, request), request.metadata), destination)
    return destination


def write_optimized(onnx_path: Path, out_dir: Path, request: WriteRequest) -> Path:
    """The ONNX file with ONNX Runtime's graph optimisations applied offline."""
    plain = write_onnx(onnx_path, out_dir, request)
    optimized = out_dir / f"{MODEL_STEM}.optimized.onnx"
    options = ort.SessionOptions()
    # EXTENDED, not ALL: ALL bakes in layouts specific to this machine's CPU (NCHWc), which would make
    # the saved file fail or slow down on another machine.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimized)
    options.log_severity_level = 3
    ort.InferenceSession(str(plain), options, providers=["CPUExecutionProvider"])
    shutil.move(optimized, plain)
    return plain


# --- int8 ---------------------------------------------------------------------------------------------------

def quantize_onnx_int8(source: Path, destination: Path, batches: Iterable[np.ndarray], input_name: str,
                       advance: Callable[[], None] = lambda: None) -> None:
    """Static QDQ quantization (int8 activations and per-channel int8 weights, min-max calibration) of
    the constant-weight convolutions in ``source``. batches: [B, 3, H, W] float32 at the model's batch.

    Only convolutions whose weights are constants are quantized: ONNX Runtime runs those with int8 kernels
    on pre-packed weights; one whose kernel is computed at run time stays float (odexport.backends.
    quantization says which ODConv layers that leaves in float).

    Weights use 7 bits (reduce_range): on x86 CPUs without VNNI, ONNX Runtime multiplies int8 pairs with
    an instruction whose 16-bit sums saturate at full range, which cost 10% top-1 agreement on an AVX2
    machine. The artifact must stay right on whichever CPU it is deployed to, so this is not per machine.
    """
    _, run_time_kernels = _convolutions_by_weight(onnx.load(str(source)))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT advises pre-processing on the root logger; our graph is simplified already
    try:
        quantize_static(str(source), str(destination), _Calibration(batches, input_name, advance),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=run_time_kernels, per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, reduce_range=True)
    finally:
        root.setLevel(level)


def _convolutions_by_weight(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """(names of the Conv nodes whose weight is a constant, names of those whose kernel is computed at run
    time)."""
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"]
    return ([node.name for node in convolutions if node.input[1] in constants],
            [node.name for node in convolutions if node.input[1] not in constants])


def _timing_runner(path: Path, precision: str) -> Runner:
    """An fp32 ONNX file run as the ONNX targets' file at ``precision`` would run (how `auto` times
    candidates): at a quantized precision, quantized first as the targets quantize, so that a
    constant-weight form is timed on its int8 kernels, against the float run-time kernels left alone."""
    if get_precision(precision).quantized and _convolutions_by_weight(onnx.load(str(path)))[0]:
        [(name, shape)], _ = onnx_io(path)
        quantized = path.with_name(f"{path.stem}.{precision}.onnx")  # beside the candidate, in auto's scratch
        quantize_onnx_int8(path, quantized, timing_calibration(shape), name)
        path = quantized
    return OnnxRuntimeRunner(path)


class _Calibration(CalibrationDataReader):
    def __init__(self, batches: Iterable[np.ndarray], input_name: str, advance: Callable[[], None]) -> None:
        self.pending, self.input_name, self.advance = iter(batches), input_name, advance

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.pending, None)
        if batch is None:
            return None
        self.advance()
        return {self.input_name: batch}


def quantized_onnx_convolutions(path: Path) -> list[str]:
    """Names of the convolutions in an ONNX file that run on int8 weights: a QLinearConv/ConvInteger, or
    a Conv whose weight is a DequantizeLinear of an int8 initializer (QDQ form)."""
    model = onnx.load(str(path))
    int8 = {init.name for init in model.graph.initializer
            if init.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)}
    dequantized = {node.output[0] for node in model.graph.node
                   if node.op_type == "DequantizeLinear" and node.input[0] in int8}
    return [node.name for node in model.graph.node if node.op_type in _CONVOLUTIONS and
            (node.op_type != "Conv" or node.input[1] in dequantized)]


# --- verify and profile ---------------------------------------------------------------------------------------

def _exposing(model_file: Path, tensors: list[str], workdir: Path) -> Runner:
    return OnnxRuntimeRunner(with_outputs(model_file, tensors, workdir))


def _session(model_file: Path, options: RunOptions, shape: tuple[int, ...]) -> Runner:
    return OnnxRuntimeRunner(model_file, threads=options.threads)


def _node_times(model_file: Path, options: RunOptions, shape: tuple[int, ...], feed: dict[str, np.ndarray],
                runs: int, workdir: Path) -> tuple[list[NodeTime], list[GraphNode]]:
    runner = OnnxRuntimeRunner(model_file, threads=options.threads, profile_prefix=str(workdir / NAME))
    for _ in range(runs + 1):
        runner.infer(feed)
    events = json.loads(runner.end_profiling().read_text())
    # The first run allocates and plans; count the nodes of the runs after it (ts, dur in microseconds).
    first = min((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                key=lambda e: e["ts"], default=None)
    after = first["ts"] + first["dur"] if first else 0
    total: dict[str, float] = defaultdict(float)
    ops: dict[str, str] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith("_kernel_time") or event.get("ts", 0) < after:
            continue
        node = name[:-len("_kernel_time")].removeprefix("fused ")  # ORT prefixes nodes it fused
        total[node] += event.get("dur", 0) / 1e3
        ops[node] = event.get("args", {}).get("op_name", "")
    nodes = [NodeTime(name, ops[name], ops[name], ms / runs) for name, ms in total.items()]
    graph = onnx.load(str(model_file), load_external_data=False).graph
    return nodes, [(n.name, list(n.input), list(n.output), [n.name]) for n in graph.node]


PRECISIONS = tuple(_WRITE_AT)

register_target(Target("onnx", "portable ONNX file (runs in any ONNX runtime)", write_onnx, OnnxRuntimeRunner,
                       precisions=PRECISIONS, runner_at=_timing_runner))
# The offline optimisations write ONNX Runtime's own fused operators (com.microsoft FusedConv, FusedGemm):
# other runtimes that read ONNX may load such a file and compute wrong outputs.
register_target(Target(NAME, "ONNX with ONNX Runtime graph optimizations applied offline (ONNX Runtime only)",
                       write_optimized, OnnxRuntimeRunner, precisions=PRECISIONS, runs_on=(NAME,),
                       runner_at=_timing_runner))
# ONNX Runtime has no inference-precision option: a session computes what the file holds (an int8 file's
# float rest in fp32).
register_backend(Backend(NAME, "ONNX Runtime on the CPU", (".onnx",), OnnxRuntimeRunner,
                         precisions={"fp32": "fp32", "int8": "fp32"}, build=_session, graph=read_onnx_graph,
                         exposing=_exposing, node_times=_node_times,
                         quantized_convolutions=quantized_onnx_convolutions, read_io=onnx_io,
                         read_metadata=onnx_metadata))
