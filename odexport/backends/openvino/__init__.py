"""OpenVINO: the IR target (ir.py), its runner (runner.py), NNCF int8 (quantization.py), custom-op ODConv2d
support (extension.py); here, how verify reads and exposes its tensors and how profile times it."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import openvino as ov

from ...errors import InputError
from ...precisions import get_precision
from ..base import FLAT, GraphNode, NodeTime, RunOptions, Runner, timing_calibration
from ..graph import Node, TensorGraph
from ..registry import Backend, Target, register_backend, register_target
from .ir import INFERENCE_PRECISION, PRECISIONS, read_model_info, write_ir
from .quantization import has_constant_weight_convolutions, quantize_openvino_int8, quantized_openvino_convolutions
from .runner import NAME, OpenVINORunner, read_model

__all__ = ["OpenVINORunner", "INFERENCE_PRECISION"]


def read_graph(path: Path) -> TensorGraph:
    """The dataflow of an IR or ONNX file as OpenVINO converts it (its tensor names, several per tensor)."""
    model = read_model(path)

    def tensor_id(port) -> str:
        names = sorted(port.get_names())
        return names[0] if names else f"{port.get_node().get_friendly_name()}:{port.get_index()}"

    nodes, names, non_float, outputs = [], {}, set(), set()
    for op in model.get_ordered_ops():
        inputs = tuple(tensor_id(port.get_source_output()) for port in op.inputs())
        if op.get_type_name() == "Result":
            outputs.update(inputs)
            continue
        produced = []
        for port in op.outputs():
            tensor = tensor_id(port)
            produced.append(tensor)
            if port.get_names():
                names[tensor] = tuple(sorted(port.get_names()))
            if not port.get_element_type().is_real():
                non_float.add(tensor)
        nodes.append(Node(op.get_friendly_name(), op.get_type_name(), inputs, tuple(produced)))
    return TensorGraph(tuple(nodes), frozenset(outputs), names, frozenset(non_float))


def _io(path: Path) -> tuple[list[tuple[str, tuple]], tuple[str, ...]]:
    """An IR's [(input name, shape with None for a dynamic axis)] and output names."""
    if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
        raise InputError(f"{path}: the weights file {path.with_suffix('.bin').name} is missing beside it",
                         hint="keep the .xml and .bin of an OpenVINO IR together")
    try:
        model = ov.Core().read_model(str(path))
    except Exception as error:
        raise InputError(f"{path}: not a readable OpenVINO IR ({type(error).__name__})",
                         hint="pass a model.xml written by odexport convert or openvino.save_model") from None
    inputs = [(port.get_any_name(), _shape(port)) for port in model.inputs]
    return inputs, tuple(port.get_any_name() for port in model.outputs)


def _shape(port) -> tuple[int | None, ...]:
    """A model input's shape, None for a dynamic axis."""
    return tuple(None if d.is_dynamic else d.get_length() for d in port.get_partial_shape())


def _exposing(model_file: Path, tensors: list[str], workdir: Path) -> Runner:
    model = read_model(model_file)
    if tensors:
        model.add_outputs(tensors)  # by tensor name: OpenVINO keeps the ONNX names through conversion
    copy = workdir / f"{model_file.stem}.exposed.xml"
    # Saved and read back by the one OpenVINO runner, so its f32 pin applies to layers as to outputs.
    ov.save_model(model, str(copy), compress_to_fp16=False)
    return OpenVINORunner(copy)


def _session(model_file: Path, options: RunOptions, shape: tuple[int, ...], perf_counters: bool = False) -> Runner:
    return OpenVINORunner(model_file, precision=INFERENCE_PRECISION[options.precision], threads=options.threads,
                          streams=options.streams, hint=options.hint, perf_counters=perf_counters,
                          static_shapes={0: shape} if options.static_shapes else None)


def _parallel(runner: Runner, feed: dict[str, np.ndarray], seconds: float) -> tuple[float, int]:
    """Images per second with as many requests in flight as the compiled model asks for."""
    compiled = runner.compiled
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, requests)
    inputs = [feed[name] for name in runner.input_names]
    batch = inputs[0].shape[0]
    for _ in range(requests):  # warm every request
        queue.start_async(inputs)
    queue.wait_all()
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or done < requests:
        queue.start_async(inputs)
        done += 1
    queue.wait_all()
    return done * batch / (time.perf_counter() - start), requests


def _node_times(model_file: Path, options: RunOptions, shape: tuple[int, ...], feed: dict[str, np.ndarray],
                runs: int, workdir: Path) -> tuple[list[NodeTime], list[GraphNode]]:
    runner = _session(model_file, options, shape, perf_counters=True)
    runner.infer(feed)
    total: dict[str, float] = defaultdict(float)
    kinds: dict[str, tuple[str, str]] = {}
    for _ in range(runs):
        runner.infer(feed)
        for info in runner.request.get_profiling_info():  # the counters of the last inference
            if info.status.name == "EXECUTED":
                total[info.node_name] += info.real_time.total_seconds() * 1e3
                kinds[info.node_name] = (info.node_type, info.exec_type)
    nodes = [NodeTime(name, *kinds[name], ms / runs) for name, ms in total.items()]
    return nodes, [_executed(op) for op in runner.compiled.get_runtime_model().get_ordered_ops()]


def _executed(op) -> GraphNode:
    """One node of the compiled model, with the original nodes OpenVINO fused into it."""
    info = op.get_rt_info()
    fused = info["originalLayersNames"].astype(str).split(",") if "originalLayersNames" in info else []
    outputs = [f"{op.get_friendly_name()}:{port.get_index()}" for port in op.outputs()]
    inputs = [f"{port.get_source_output().get_node().get_friendly_name()}:{port.get_source_output().get_index()}"
              for port in op.inputs()]
    return op.get_friendly_name(), inputs, outputs, [op.get_friendly_name(), *fused]


def _timing_runner(path: Path, precision: str) -> Runner:
    """An fp32 ONNX file run as an IR written at ``precision`` would run (how `auto` times candidates): at
    a quantized precision, quantized first as write_ir quantizes, so that a constant-weight form is timed on
    the int8 kernels it will run on, against the float run-time kernels the quantizer leaves alone."""
    if get_precision(precision).quantized:
        model = read_model(path)
        if has_constant_weight_convolutions(model):
            calibration = timing_calibration(_shape(model.inputs[0]))
            path = path.with_name(f"{path.stem}.{precision}.xml")  # beside the candidate, in auto's scratch
            ov.save_model(quantize_openvino_int8(model, calibration), str(path), compress_to_fp16=False)
    return OpenVINORunner(path, precision=INFERENCE_PRECISION[precision])


register_target(Target(NAME, "OpenVINO IR (.xml + .bin)", write_ir, OpenVINORunner, precisions=tuple(PRECISIONS),
                       layouts=(FLAT, "ovms"), runner_at=_timing_runner, needs={"int8": "nncf"}))
register_backend(Backend(NAME, "OpenVINO on the CPU", (".xml", ".onnx"), OpenVINORunner,
                         precisions=INFERENCE_PRECISION, build=_session, graph=read_graph, exposing=_exposing,
                         parallel=_parallel, node_times=_node_times,
                         quantized_convolutions=quantized_openvino_convolutions, read_io=_io,
                         read_metadata=read_model_info, target=NAME, reshapes=True))
