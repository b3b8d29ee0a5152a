"""The runtimes profile measures, each as data: which files it reads, the inference precisions it offers,
how to build its runner with the profiling options, how it runs many requests at once, and how it reports
per-node times."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..runners import OnnxRuntimeRunner, OpenVINORunner, Runner
from .layers import LayerBreakdown, NodeTime, breakdown, places

HINTS = ("latency", "throughput")


@dataclass(frozen=True)
class RunOptions:
    """precision: a name in the runtime's ``precisions``; threads/streams: None lets the runtime choose."""

    precision: str = "fp32"
    hint: str = "latency"
    threads: int | None = None
    streams: int | None = None


@dataclass(frozen=True)
class ProfilingRuntime:
    """precisions: {our name: the runtime's own name for it}. build(model_file, options, input shape) ->
    runner. parallel(runner, feed, seconds) -> (images/s, requests in flight), or None when the runtime
    runs one request at a time. layers(model_file, options, input shape, feed, runs, workdir) -> node
    times averaged over ``runs`` and {node name: scoped name it belongs to}."""

    name: str
    reads: tuple[str, ...]
    precisions: dict[str, str]
    build: Callable[[Path, RunOptions, tuple[int, ...]], Runner]
    parallel: Callable[[Runner, dict[str, np.ndarray], float], tuple[float, int]] | None
    node_times: Callable[[Path, RunOptions, tuple[int, ...], dict[str, np.ndarray], int, Path],
                         tuple[list[NodeTime], dict[str, str | None]]]
    target: str = "onnx"  # the convert target whose artifacts this runtime runs (auto times on it)
    # Precisions that live in the artifact, not in the session: convert writes them (post-training
    # quantization), and the session runs the file at the inference precision ``precisions`` maps them to.
    quantized: tuple[str, ...] = ()


# --- ONNX Runtime ---------------------------------------------------------------------------------------

def _onnxruntime(model_file: Path, options: RunOptions, shape: tuple[int, ...]) -> Runner:
    return OnnxRuntimeRunner(model_file, threads=options.threads)


def _onnxruntime_nodes(model_file: Path, options: RunOptions, shape: tuple[int, ...], feed: dict[str, np.ndarray],
                       runs: int, workdir: Path) -> tuple[list[NodeTime], dict[str, str | None]]:
    import onnx

    runner = OnnxRuntimeRunner(model_file, threads=options.threads, profile_prefix=str(workdir / "onnxruntime"))
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
    return nodes, places([(n.name, list(n.input), list(n.output), [n.name]) for n in graph.node])


# --- OpenVINO -------------------------------------------------------------------------------------------

def _openvino(model_file: Path, options: RunOptions, shape: tuple[int, ...], perf_counters: bool = False) -> Runner:
    return OpenVINORunner(model_file, precision=OPENVINO.precisions[options.precision], threads=options.threads,
                          streams=options.streams, hint=options.hint, perf_counters=perf_counters,
                          static_shapes={0: shape})


def _openvino_parallel(runner: Runner, feed: dict[str, np.ndarray], seconds: float) -> tuple[float, int]:
    """Images per second with as many requests in flight as the compiled model asks for."""
    import openvino as ov

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


def _openvino_nodes(model_file: Path, options: RunOptions, shape: tuple[int, ...], feed: dict[str, np.ndarray],
                    runs: int, workdir: Path) -> tuple[list[NodeTime], dict[str, str | None]]:
    runner = _openvino(model_file, options, shape, perf_counters=True)
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
    graph = []
    for op in runner.compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        fused = info["originalLayersNames"].astype(str).split(",") if "originalLayersNames" in info else []
        outputs = [f"{op.get_friendly_name()}:{port.get_index()}" for port in op.outputs()]
        inputs = [f"{port.get_source_output().get_node().get_friendly_name()}:{port.get_source_output().get_index()}"
                  for port in op.inputs()]
        graph.append((op.get_friendly_name(), inputs, outputs, [op.get_friendly_name(), *fused]))
    return nodes, places(graph)


ONNXRUNTIME = ProfilingRuntime("onnxruntime", (".onnx",), {"fp32": "fp32", "int8": "fp32"}, _onnxruntime, None,
                               _onnxruntime_nodes, quantized=("int8",))
# int8 runs at f32 inference precision: the quantized convolutions compute in int8 whatever the hint, and
# what is left in float (ODConv's attention branch) computes in f32, for the twin and the ODConv model alike.
OPENVINO = ProfilingRuntime("openvino", (".xml", ".onnx"), {"fp32": "f32", "bf16": "bf16", "int8": "f32"}, _openvino,
                            _openvino_parallel, _openvino_nodes, target="openvino", quantized=("int8",))
RUNTIMES: dict[str, ProfilingRuntime] = {runtime.name: runtime for runtime in (ONNXRUNTIME, OPENVINO)}
PRECISIONS = tuple(dict.fromkeys(p for runtime in RUNTIMES.values() for p in runtime.precisions))


def choose_runtimes(choice: str, model_file: Path, runs_on: tuple[str, ...] | None = None) -> list[ProfilingRuntime]:
    """"all": every runtime that reads the file (of ``runs_on`` when the file is restricted to those); else
    the one named (verify's rules, over this registry)."""
    from ..verification.runtimes import choose_runtimes as choose

    return choose(choice, model_file, registry=RUNTIMES, runs_on=runs_on)


def layer_breakdown(runtime: ProfilingRuntime, model_file: Path, options: RunOptions, shape: tuple[int, ...],
                    feed: dict[str, np.ndarray], runs: int, workdir: Path, odconv_layers: list[str]) -> LayerBreakdown:
    nodes, belongs = runtime.node_times(model_file, options, shape, feed, runs, workdir)
    return breakdown(runtime.name, runs, nodes, belongs, odconv_layers)
