"""What post-training quantization quantized: which ODConv layers run int8 convolutions and which stayed
float, and why. Each backend says which convolutions of its model files run on int8 weights; the
quantizers themselves are the backends' own (ONNX Runtime's QDQ, NNCF for OpenVINO)."""

from __future__ import annotations

from pathlib import Path

from ..lowering import get_lowering
from ..module_names import onnx_scope
from .registry import backends_reading


def quantized_convolutions(model_file: Path) -> list[str]:
    """Names of the convolutions in ``model_file`` that run on int8 weights, as the first backend that
    reads the file and can tell sees them."""
    able = [backend for backend in backends_reading(model_file) if backend.quantized_convolutions]
    return able[0].quantized_convolutions(model_file) if able else []


def odconv_quantization(model_file: Path, layers: list, *, timed: bool = False) -> dict:
    """Which ODConv layers run int8 convolutions and which stayed float (and why).

    layers: the LoweredLayer records of the conversion (path, lowering name, lowering's constant_weights);
    timed: `auto` chose the lowerings by timing each layer's int8 form against its float ones.
    """
    quantized = quantized_convolutions(model_file)
    per_layer, left_float = [], []
    for layer in layers:
        scope = onnx_scope(layer.path)
        count = sum(1 for name in quantized if name.startswith(scope))
        if count:
            per_layer.append({"path": layer.path, "quantized_convolutions": count})
            continue
        lowering = get_lowering(layer.lowering)
        reason = ("convolution kernel computed at run time by the "
                  f"{lowering.name} lowering (no constant weights to quantize)" if not lowering.constant_weights
                  else "the quantizer left its convolutions in float")
        if timed and not lowering.constant_weights:
            reason += ", which auto timed faster here than the layer's int8 form"
        left_float.append({"path": layer.path, "reason": reason})
    return {"quantized_convolutions": len(quantized), "odconv_layers_quantized": per_layer,
            "odconv_layers_float": left_float}
