"""The OpenVINO IR target: precision, metadata in the IR's runtime info, and the Model Server layout.

Precision is two things in OpenVINO: how weights are stored (fp16 compresses them; int8 stores
quantized ones) and the inference precision the CPU computes in. The latter is recorded in the IR as
``runtime_options/INFERENCE_PRECISION_HINT``. OpenVINO 2026.4's CPU plugin does not apply that entry by
itself (compile_model still reports its own default, bf16 on CPUs with AVX512-BF16 or AMX), so every
reader odexport ships (the OpenVINO runner, the OVMS config.json written beside the repository) passes it
explicitly; :func:`inference_config` is that reading, for your own code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import openvino as ov

from ...precisions import get_precision
from ..base import WriteRequest
from .extension import odconv_conversion_extension
from .quantization import quantize_openvino_int8

INFERENCE_PRECISION_KEY = "INFERENCE_PRECISION_HINT"
MODEL_INFO = "model_info"
OVMS_VERSION = "1"


@dataclass(frozen=True)
class AtPrecision:
    """What OpenVINO does with one odexport precision: the CPU inference precision the IR is written for
    and runs at, and whether its weights are stored as fp16 (decompressed at load)."""

    inference: str
    fp16_weights: bool = False


# fp32 pins f32: without it OpenVINO runs f32 models in bf16 on CPUs that have it. fp16 and int8 keep f32
# arithmetic for what is not quantized: fp16 is a storage format on CPUs. The one place OpenVINO's
# precisions are declared; the target, the runner and profile all read it.
PRECISIONS = {"fp32": AtPrecision("f32"), "fp16": AtPrecision("f32", fp16_weights=True),
              "bf16": AtPrecision("bf16"), "int8": AtPrecision("f32")}
INFERENCE_PRECISION = {name: at.inference for name, at in PRECISIONS.items()}


def write_ir(onnx_path: Path, out_dir: Path, request: WriteRequest) -> Path:
    """Returns the .xml (``<name>/1/model.xml`` for "ovms")."""
    # The extension converts custom-op ODConv2d nodes (OpenVINO does not expand their ONNX functions).
    model = ov.convert_model(str(onnx_path), extension=[odconv_conversion_extension()])
    if get_precision(request.precision).quantized:
        calibration = request.calibration_batches()
        with request.reporter.progress("calibrating", len(calibration)) as advance:
            model = quantize_openvino_int8(model, calibration, advance)
    for key, value in sorted(request.metadata.items()):
        model.set_rt_info(value, [MODEL_INFO, key])
    at = PRECISIONS[request.precision]
    hint = at.inference
    model.set_rt_info(hint, ["runtime_options", INFERENCE_PRECISION_KEY])

    if request.layout == "ovms":
        directory = out_dir / request.name / OVMS_VERSION
        directory.mkdir(parents=True)
        _write_ovms_config(out_dir, request.name, {INFERENCE_PRECISION_KEY: hint})
    else:
        directory = out_dir
    destination = directory / "model.xml"
    ov.save_model(model, str(destination), compress_to_fp16=at.fp16_weights)
    return destination


def _write_ovms_config(out_dir: Path, name: str, plugin_config: dict[str, str]) -> None:
    """config.json for `ovms --config_path <out_dir>/config.json`, with the model mounted at /models/<name>
    (the usual container layout; edit base_path when serving from elsewhere)."""
    config = {"model_config_list": [{"config": {"name": name, "base_path": f"/models/{name}",
                                                "plugin_config": plugin_config}}]}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def inference_config(model) -> dict[str, str]:
    """The compile_model config an IR was written for: {} for an IR without odexport's runtime options.

    model: an ``openvino.Model`` (as read by ``Core.read_model``)."""
    if model.has_rt_info(["runtime_options", INFERENCE_PRECISION_KEY]):
        return {INFERENCE_PRECISION_KEY: model.get_rt_info(["runtime_options", INFERENCE_PRECISION_KEY]).astype(str)}
    return {}


def read_model_info(path: Path) -> dict[str, str]:
    """The ``model_info`` entries of an IR's runtime info (odexport's metadata)."""
    model = ov.Core().read_model(str(path))
    if not model.has_rt_info(MODEL_INFO):
        return {}
    return {key: value.astype(str) for key, value in model.get_rt_info(MODEL_INFO).astype(dict).items()}
