"""The OpenVINO runner: a compiled model on the CPU and one infer request, reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from .extension import odconv_conversion_extension
from .ir import INFERENCE_PRECISION_KEY, inference_config

NAME = "openvino"


def core() -> ov.Core:
    """A Core that reads IRs and ONNX files, custom-op ODConv2d nodes included."""
    reader = ov.Core()
    reader.add_extension(odconv_conversion_extension())
    return reader


def read_model(path: Path) -> ov.Model:
    return core().read_model(str(path))


class OpenVINORunner:
    """OpenVINO on the CPU, at the inference precision the IR was written for.

    An IR written by odexport records its precision (odexport.backends.openvino.ir.inference_config);
    anything else runs in f32: on CPUs with AMX or AVX512-BF16 OpenVINO otherwise runs f32 models in bf16
    by default, which would turn a parity check into a precision check. ``precision`` overrides both.
    """

    name = NAME

    def __init__(self, path: Path, *, precision: str | None = None, threads: int | None = None,
                 streams: int | None = None, hint: str | None = None, perf_counters: bool = False,
                 static_shapes: dict[str | int, tuple[int, ...]] | None = None) -> None:
        """precision: OpenVINO's own name ("f32", "bf16"). hint: OpenVINO's PERFORMANCE_HINT, "latency"
        or "throughput" (None: OpenVINO's default); streams: NUM_STREAMS (None: what the hint chooses);
        perf_counters: collect per-layer times (PERF_COUNT, read with request.get_profiling_info());
        static_shapes: {input name or index: shape} to compile a dynamic model at, so that it runs
        static-shape kernels (as benchmark_app does)."""
        runtime = core()
        model = runtime.read_model(str(path))
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
        self.compiled = runtime.compile_model(model, "CPU", config)
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
