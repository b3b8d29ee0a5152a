"""INT8 post-training quantization (ONNX Runtime QDQ, NNCF for OpenVINO), and what it quantized.

Only convolutions whose weights are constants are quantized: a runtime executes those with int8
kernels on pre-packed weights. A convolution whose kernel is computed at run time (the dynamic-weight
lowering, or inside a custom-op node) stays float, and :func:`odconv_quantization` says which ODConv
layers that leaves in float and why. Attention branches (small GEMMs on pooled vectors) stay float too:
they cost little and steer every kernel.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .inspection import onnx_scope

# Operator types holding a convolution after quantization, per model format.
_ONNX_CONVS = ("Conv", "QLinearConv", "ConvInteger")
_INT8_TYPES = ("i8", "u8")
# The nodes between a stored weight and its convolution in an IR (decompression, quantization, shape).
_WEIGHT_CHAIN = ("Convert", "Subtract", "Multiply", "FakeQuantize", "Reshape")


def quantize_onnx_int8(source: Path, destination: Path, batches: Iterable[np.ndarray], input_name: str,
                       advance: Callable[[], None] = lambda: None) -> None:
    """Static QDQ quantization (int8 activations and per-channel int8 weights, min-max calibration) of
    the constant-weight convolutions in ``source``. batches: [B, 3, H, W] float32 at the model's batch.

    Weights use 7 bits (reduce_range): on x86 CPUs without VNNI, ONNX Runtime multiplies int8 pairs with
    an instruction whose 16-bit sums saturate at full range, which cost 10% top-1 agreement on an AVX2
    machine. The artifact must stay right on whichever CPU it is deployed to, so this is not per machine.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.pending = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.pending, None)
            if batch is None:
                return None
            advance()
            return {input_name: batch}

    model = onnx.load(str(source))
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    run_time_kernels = [node.name for node in model.graph.node
                        if node.op_type == "Conv" and node.input[1] not in constants]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT advises pre-processing on the root logger; our graph is simplified already
    try:
        quantize_static(str(source), str(destination), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv"], nodes_to_exclude=run_time_kernels, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, reduce_range=True)
    finally:
        root.setLevel(level)


def quantize_openvino_int8(model, batches: list[np.ndarray], advance: Callable[[], None] = lambda: None):
    """An ``openvino.Model`` with its constant-weight convolutions quantized by NNCF (FakeQuantize on
    activations, int8 weights). batches: [B, 3, H, W] float32 at the model's batch."""
    from .extras import require

    nncf = require("nncf")
    logging.getLogger("nncf").setLevel(logging.ERROR)  # its INFO notes would interleave our stage lines
    run_time_kernels = [op.get_friendly_name() for op in model.get_ordered_ops()
                        if op.get_type_name() in ("Convolution", "GroupConvolution")
                        and not _is_constant(op.input_value(1).get_node())]

    def transform(batch: np.ndarray) -> np.ndarray:
        advance()
        return batch

    ignored = nncf.IgnoredScope(names=run_time_kernels, types=["MatMul"], validate=False)
    # NNCF draws its own progress bars on stdout, through and between our lines and the result tables;
    # the caller's progress (advance) already counts the calibration batches, so its bars are discarded.
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(model, nncf.Dataset(batches, transform), subset_size=len(batches),
                             ignored_scope=ignored, preset=nncf.QuantizationPreset.PERFORMANCE)


def _is_constant(node) -> bool:
    """A Constant, possibly behind the Convert/Subtract/Multiply chain of a compressed weight."""
    while node.get_type_name() in _WEIGHT_CHAIN:
        if node.get_type_name() in ("Subtract", "Multiply") and not all(
                _is_constant(node.input_value(i).get_node()) for i in range(node.get_input_size())):
            return False
        node = node.input_value(0).get_node()
    return node.get_type_name() == "Constant"


def quantized_onnx_convolutions(path: Path) -> list[str]:
    """Names of the convolutions in an ONNX file that run on int8 weights: a QLinearConv/ConvInteger, or
    a Conv whose weight is a DequantizeLinear of an int8 initializer (QDQ form)."""
    import onnx

    model = onnx.load(str(path))
    int8 = {init.name for init in model.graph.initializer
            if init.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)}
    dequantized = {node.output[0] for node in model.graph.node
                   if node.op_type == "DequantizeLinear" and node.input[0] in int8}
    return [node.name for node in model.graph.node if node.op_type in _ONNX_CONVS and
            (node.op_type != "Conv" or node.input[1] in dequantized)]


def quantized_openvino_convolutions(path: Path) -> list[str]:
    """Friendly names of the convolutions in an IR whose weights are int8 (an i8/u8 Constant, converted
    and scaled) or pass through a FakeQuantize."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution"):
            continue
        node, seen_fake_quantize = op.input_value(1).get_node(), False
        while node.get_type_name() in _WEIGHT_CHAIN:
            seen_fake_quantize |= node.get_type_name() == "FakeQuantize"
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Constant" and (
                seen_fake_quantize or node.get_output_element_type(0).get_type_name() in _INT8_TYPES):
            names.append(op.get_friendly_name())
    return names


QUANTIZED_CONVOLUTIONS = {".onnx": quantized_onnx_convolutions, ".xml": quantized_openvino_convolutions}


def quantized_convolutions(model_file: Path) -> list[str]:
    return QUANTIZED_CONVOLUTIONS[model_file.suffix](model_file)


def odconv_quantization(model_file: Path, layers: list) -> dict:
    """Which ODConv layers run int8 convolutions and which stayed float (and why).

    layers: the LoweredLayer records of the conversion (path, lowering name, lowering's constant_weights).
    """
    from .lowering import get_lowering

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
        left_float.append({"path": layer.path, "reason": reason})
    return {"quantized_convolutions": len(quantized), "odconv_layers_quantized": per_layer,
            "odconv_layers_float": left_float}
