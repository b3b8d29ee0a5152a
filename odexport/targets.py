"""Targets: what `convert` writes from the exported ONNX graph, at which precisions, and the runner that
executes it."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .console import Reporter, SilentReporter
from .errors import InputError
from .inputs import batches
from .runners import OnnxRuntimeRunner, OpenVINORunner, Runner

MODEL_STEM = "model"
FLAT = "flat"
# ONNX metadata key of the runtimes an artifact is restricted to (a JSON list), as the manifest's "runs_on".
RUNS_ON_KEY = "odexport.runs_on"


@dataclass(frozen=True)
class WriteRequest:
    """What a target writes: metadata (str -> str, stored in the model file), a precision name
    (odexport.precisions), calibration samples [N, 3, H, W] for a quantized precision, fed at ``batch``
    (the model's batch, 1 for a dynamic one), and a directory layout (FLAT or one the target lists)."""

    metadata: dict[str, str]
    precision: str = "fp32"
    calibration: np.ndarray | None = None
    batch: int = 1
    layout: str = FLAT
    name: str = MODEL_STEM
    input_name: str = "input"
    reporter: Reporter = field(default_factory=SilentReporter)

    def calibration_batches(self) -> list[np.ndarray]:
        if self.calibration is None:
            raise InputError(f"precision {self.precision} needs calibration images",
                             hint="pass --calibration DIR or --calibration synthetic")
        return batches(self.calibration, self.batch)


@dataclass(frozen=True)
class Target:
    """write(onnx_path, out_dir, request) writes the deployable files into out_dir and returns the main
    file; runner(main_file) executes it at the precision it was written for."""

    name: str
    summary: str
    write: Callable[[Path, Path, WriteRequest], Path]
    runner: Callable[[Path], Runner]
    precisions: tuple[str, ...] = ("fp32",)
    layouts: tuple[str, ...] = (FLAT,)
    # (fp32 ONNX file, precision) -> a runner that executes it as this target's artifact at that precision
    # would run; `auto` times candidate lowerings with it. None: the plain runner.
    runner_at: Callable[[Path, str], Runner] | None = None
    # precision -> the optional module (odexport.extras) writing it needs, checked before any slow work.
    needs: dict[str, str] = field(default_factory=dict)
    # The only runtimes that compute this target's files correctly (its rewrites are theirs alone); None:
    # any runtime that reads the file format.
    runs_on: tuple[str, ...] | None = None

    def metadata(self) -> dict[str, str]:
        """What the model file itself says about where it runs."""
        return {RUNS_ON_KEY: json.dumps(list(self.runs_on))} if self.runs_on else {}

    def timing_runner(self, precision: str) -> Callable[[Path], Runner]:
        if self.runner_at is None:
            return self.runner
        return lambda path: self.runner_at(path, precision)

    def check(self, precision: str, layout: str) -> None:
        """InputError unless this target writes ``precision`` in ``layout``."""
        if precision not in self.precisions:
            able = [t.name for t in _TARGETS.values() if precision in t.precisions]
            raise InputError(f"target {self.name} does not write {precision}",
                             hint=f"{self.name} writes {', '.join(self.precisions)}; "
                                  f"{precision} is written by: {', '.join(able) or 'none'}")
        if layout not in self.layouts:
            raise InputError(f"target {self.name} has no {layout!r} layout",
                             hint=f"{self.name} layouts: {', '.join(self.layouts)}")
        if precision in self.needs:
            from .extras import require

            require(self.needs[precision])


_TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    _TARGETS[target.name] = target
    return target


def list_targets() -> list[str]:
    return list(_TARGETS)


def get_target(name: str) -> Target:
    try:
        return _TARGETS[name]
    except KeyError:
        raise InputError(f"unknown target {name!r}", hint=f"choose one of: {', '.join(_TARGETS)}") from None


def _with_metadata(model, metadata: dict[str, str]):
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=key, value=value)
    return model


def _write_onnx(onnx_path: Path, out_dir: Path, request: WriteRequest) -> Path:
    """fp32 as exported; fp16 with float16 weights and arithmetic where ONNX Runtime has fp16 kernels
    (inputs and outputs stay float32, so callers feed the same arrays); int8 as QDQ."""
    import onnx

    destination = out_dir / f"{MODEL_STEM}.onnx"
    if request.precision == "fp16":
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

        from .lowering.custom_op import OP_TYPE

        # The converter does not enter function bodies: a custom-op node keeps float32 (behind Casts).
        model = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True,
                                         op_block_list=[*DEFAULT_OP_BLOCK_LIST, OP_TYPE])
    elif request.precision == "int8":
        from .quantization import quantize_onnx_int8

        calibration = request.calibration_batches()
        quantized = onnx_path.with_name(f"{onnx_path.stem}.int8.onnx")
        with request.reporter.progress("calibrating", len(calibration)) as advance:
            quantize_onnx_int8(onnx_path, quantized, calibration, request.input_name, advance)
        model = onnx.load(str(quantized))
    else:
        model = onnx.load(str(onnx_path))
    onnx.save(_with_metadata(model, request.metadata), destination)
    return destination


def _write_onnxruntime(onnx_path: Path, out_dir: Path, request: WriteRequest) -> Path:
    import onnxruntime as ort

    plain = _write_onnx(onnx_path, out_dir, request)
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


def _write_openvino(onnx_path: Path, out_dir: Path, request: WriteRequest) -> Path:
    from .openvino_ir import write_ir

    return write_ir(onnx_path, out_dir, request)


register_target(Target("onnx", "portable ONNX file (runs in any ONNX runtime)", _write_onnx, OnnxRuntimeRunner,
                       precisions=("fp32", "fp16", "int8")))
# The offline optimisations write ONNX Runtime's own fused operators (com.microsoft FusedConv, FusedGemm):
# other runtimes that read ONNX may load such a file and compute wrong outputs.
register_target(
    Target("onnxruntime", "ONNX with ONNX Runtime graph optimizations applied offline (ONNX Runtime only)",
           _write_onnxruntime, OnnxRuntimeRunner, precisions=("fp32", "fp16", "int8"), runs_on=("onnxruntime",))
)
def _openvino_at(path: Path, precision: str) -> Runner:
    # fp16 IRs compute in f32 (compressed weights only); bf16 is an inference precision.
    return OpenVINORunner(path, precision="bf16" if precision == "bf16" else "f32")


register_target(Target("openvino", "OpenVINO IR (.xml + .bin)", _write_openvino, OpenVINORunner,
                       precisions=("fp32", "fp16", "bf16", "int8"), layouts=(FLAT, "ovms"), runner_at=_openvino_at,
                       needs={"int8": "nncf"}))
