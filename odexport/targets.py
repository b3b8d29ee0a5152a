"""Targets: what `convert` writes from the exported ONNX graph, and the runner that executes it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import InputError
from .runners import OnnxRuntimeRunner, OpenVINORunner, Runner

MODEL_STEM = "model"


@dataclass(frozen=True)
class Target:
    """write(onnx_path, out_dir, metadata) writes the deployable files into out_dir and returns the
    main file; runner(main_file) executes it."""

    name: str
    summary: str
    write: Callable[[Path, Path, dict[str, str]], Path]
    runner: Callable[[Path], Runner]


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


def _write_onnx(onnx_path: Path, out_dir: Path, metadata: dict[str, str]) -> Path:
    import onnx

    model = onnx.load(onnx_path)
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=key, value=value)
    destination = out_dir / f"{MODEL_STEM}.onnx"
    onnx.save(model, destination)
    return destination


def _write_onnxruntime(onnx_path: Path, out_dir: Path, metadata: dict[str, str]) -> Path:
    import onnxruntime as ort

    plain = _write_onnx(onnx_path, out_dir, metadata)
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


def _write_openvino(onnx_path: Path, out_dir: Path, metadata: dict[str, str]) -> Path:
    import openvino as ov

    from .openvino_extension import odconv_conversion_extension

    # The extension converts custom-op ODConv2d nodes (OpenVINO does not expand their ONNX functions).
    model = ov.convert_model(str(onnx_path), extension=[odconv_conversion_extension()])
    for key, value in sorted(metadata.items()):
        model.set_rt_info(value, ["model_info", key])
    destination = out_dir / f"{MODEL_STEM}.xml"
    # compress_to_fp16 defaults to True; an fp32 target must keep fp32 weights.
    ov.save_model(model, str(destination), compress_to_fp16=False)
    return destination


register_target(Target("onnx", "portable ONNX file (runs in any ONNX runtime)", _write_onnx, OnnxRuntimeRunner))
register_target(
    Target("onnxruntime", "ONNX with ONNX Runtime graph optimizations applied offline", _write_onnxruntime,
           OnnxRuntimeRunner)
)
register_target(Target("openvino", "OpenVINO IR (.xml + .bin)", _write_openvino, OpenVINORunner))
