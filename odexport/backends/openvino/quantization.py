"""INT8 for OpenVINO: NNCF post-training quantization of an ``openvino.Model``, and which convolutions of
an IR run on int8 weights.

Only convolutions whose weights are constants are quantized: the CPU plugin executes those with int8
kernels on pre-packed weights. Attention branches (small GEMMs on pooled vectors) stay float too: they cost
little and steer every kernel.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import openvino as ov

from ...extras import require

_INT8_TYPES = ("i8", "u8")
_CONVOLUTIONS = ("Convolution", "GroupConvolution")
# The nodes between a stored weight and its convolution in an IR (decompression, quantization, shape).
_WEIGHT_CHAIN = ("Convert", "Subtract", "Multiply", "FakeQuantize", "Reshape")


def quantize_openvino_int8(model: ov.Model, batches: list[np.ndarray], advance: Callable[[], None] = lambda: None):
    """``model`` with its constant-weight convolutions quantized by NNCF (FakeQuantize on activations, int8
    weights). batches: [B, 3, H, W] float32 at the model's batch."""
    nncf = require("nncf")  # an optional extra: imported only when an int8 IR is written
    logging.getLogger("nncf").setLevel(logging.ERROR)  # its INFO notes would interleave our stage lines
    run_time_kernels = [op.get_friendly_name() for op in model.get_ordered_ops()
                        if op.get_type_name() in _CONVOLUTIONS and not _is_constant(op.input_value(1).get_node())]

    def transform(batch: np.ndarray) -> np.ndarray:
        advance()
        return batch

    ignored = nncf.IgnoredScope(names=run_time_kernels, types=["MatMul"], validate=False)
    # NNCF draws its own progress bars on stdout, through and between our lines and the result tables;
    # the caller's progress (advance) already counts the calibration batches, so its bars are discarded.
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(model, nncf.Dataset(batches, transform), subset_size=len(batches),
                             ignored_scope=ignored, preset=nncf.QuantizationPreset.PERFORMANCE)


def has_constant_weight_convolutions(model: ov.Model) -> bool:
    """Whether NNCF has any convolution in ``model`` to quantize (one whose weights are constants)."""
    return any(op.get_type_name() in _CONVOLUTIONS and _is_constant(op.input_value(1).get_node())
               for op in model.get_ordered_ops())


def _is_constant(node) -> bool:
    """A Constant, possibly behind the Convert/Subtract/Multiply chain of a compressed weight."""
    while node.get_type_name() in _WEIGHT_CHAIN:
        if node.get_type_name() in ("Subtract", "Multiply") and not all(
                _is_constant(node.input_value(i).get_node()) for i in range(node.get_input_size())):
            return False
        node = node.input_value(0).get_node()
    return node.get_type_name() == "Constant"


def quantized_openvino_convolutions(path: Path) -> list[str]:
    """Friendly names of the convolutions in an IR whose weights are int8 (an i8/u8 Constant, converted
    and scaled) or pass through a FakeQuantize."""
    model = ov.Core().read_model(str(path))
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in _CONVOLUTIONS:
            continue
        node, seen_fake_quantize = op.input_value(1).get_node(), False
        while node.get_type_name() in _WEIGHT_CHAIN:
            seen_fake_quantize |= node.get_type_name() == "FakeQuantize"
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Constant" and (
                seen_fake_quantize or node.get_output_element_type(0).get_type_name() in _INT8_TYPES):
            names.append(op.get_friendly_name())
    return names
