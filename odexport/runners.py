"""Runtimes behind one interface: ``infer(feed) -> {output name: array}``.

Sessions are built once per runner and reused; verify, profile and calibration all go through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn


class Runner(Protocol):
    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


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


class TorchRunner:
    """PyTorch eager, the reference."""

    name = "pytorch"

    def __init__(self, module: nn.Module, input_names: tuple[str, ...], output_names: tuple[str, ...]) -> None:
        self.module = module.eval()
        self.input_names = input_names
        self.output_names = output_names

    @torch.no_grad()
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.module(*(torch.from_numpy(feed[name]) for name in self.input_names))
        return {name: out.numpy() for name, (_, out) in zip(self.output_names, flatten_outputs(outputs))}


class OnnxRuntimeRunner:
    """ONNX Runtime on the CPU."""

    name = "onnxruntime"

    def __init__(self, path: Path, *, threads: int | None = None, profile_prefix: str | None = None) -> None:
        """profile_prefix: write ONNX Runtime's per-node profiling JSON to files starting with it (see
        end_profiling)."""
        import onnxruntime as ort

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


class OpenVINORunner:
    """OpenVINO on the CPU, at the inference precision the IR was written for.

    An IR written by odexport records its precision (odexport.openvino_ir.inference_config); anything
    else runs in f32: on CPUs with AMX or AVX512-BF16 OpenVINO otherwise runs f32 models in bf16 by
    default, which would turn a parity check into a precision check. ``precision`` overrides both.
    """

    name = "openvino"

    def __init__(self, path: Path, *, precision: str | None = None, threads: int | None = None,
                 streams: int | None = None, hint: str | None = None, perf_counters: bool = False,
                 static_shapes: dict[str | int, tuple[int, ...]] | None = None) -> None:
        """hint: OpenVINO's PERFORMANCE_HINT, "latency" or "throughput" (None: OpenVINO's default);
        streams: NUM_STREAMS (None: what the hint chooses); perf_counters: collect per-layer times
        (PERF_COUNT, read with request.get_profiling_info()); static_shapes: {input name or index: shape} to
        compile a dynamic model at, so that it runs static-shape kernels (as benchmark_app does)."""
        import openvino as ov

        from .openvino_extension import odconv_conversion_extension
        from .openvino_ir import INFERENCE_PRECISION_KEY, inference_config

        core = ov.Core()
        core.add_extension(odconv_conversion_extension())  # reads ONNX files with custom-op ODConv2d nodes
        model = core.read_model(str(path))
        config: dict[str, object] = {INFERENCE_PRECISION_KEY: "f32"} | inference_config(model)
        if precision:
            config[INFERENCE_PRECISION_KEY] = precision
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if hint:
            config["PERFORMANCE_HINT"] = hint.upper()
        if streams:
            config["NUM_STREAMS"] = streams
        if perf_counters:
            config["PERF_COUNT"] = True
        if static_shapes:
            model.reshape(static_shapes)
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_names = tuple(port.get_any_name() for port in self.compiled.inputs)
        self.output_names = tuple(port.get_any_name() for port in self.compiled.outputs)

    @property
    def inference_precision(self) -> str:
        """What the compiled model computes in, as OpenVINO reports it (e.g. "f32", "bf16")."""
        return self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.request.infer({name: feed[name] for name in self.input_names})
        return {name: np.array(results[port]) for name, port in zip(self.output_names, self.compiled.outputs)}
