"""OpenVINO support for ``ai.odexport::ODConv2d`` nodes (the `custom-op` lowering).

OpenVINO's ONNX frontend does not expand model-local functions of a custom domain ("No conversion rule
found for operations: ai.odexport.ODConv2d"). Two ways in, equivalent in results:

- :func:`odconv_conversion_extension`: a frontend conversion rule that builds the node from OpenVINO ops
  (``core.add_extension(...)`` before ``read_model``, or ``ov.convert_model(path, extension=...)``);
- expand the function bodies into the graph: ``onnx.inliner.inline_local_functions`` on files odexport
  writes, :func:`odexport.backends.custom_op.inline_odconv_functions` also on files written by earlier
  releases.

The rule implements docs/custom-op.md, the same math as the function body; being written at conversion
time it knows every size that does not depend on the input, so absent attentions are simply left out.
"""

from __future__ import annotations

import numpy as np
import openvino.opset13 as ops
from openvino.frontend.onnx import ConversionExtension

from ...lowering.custom_op import DEFAULTS, DOMAIN, KERNEL_ACTIVATION_CODES, OP_TYPE


def odconv_conversion_extension():
    """An ``openvino.frontend.onnx.ConversionExtension`` for ai.odexport::ODConv2d."""
    return ConversionExtension(OP_TYPE, DOMAIN, _convert_odconv2d)


def _convert_odconv2d(node) -> list:
    """node: an openvino NodeContext of one ODConv2d; returns its output [B, O, Ho, Wo]."""
    x, weight = node.get_input(0), node.get_input(1)
    bias = node.get_input(6) if node.get_input_size() > 6 else None
    kernel_bias = node.get_input(7) if node.get_input_size() > 7 else None
    n, out_channels, c_in_g, k, _ = (dim.get_length() for dim in weight.get_partial_shape())
    groups, taps = node.get_attribute("group"), k * k
    channel_logits, filter_logits, spatial_logits, kernel_logits = attention_logits(node, x)

    scaled = x if channel_logits is None else ops.multiply(x, _unsqueeze(ops.sigmoid(channel_logits), [2, 3]))
    batch = _dims(x, 0, 1)
    columns = _columns(node, scaled, k)
    out_size = _dims(columns, 2, 4)
    group_shape = ops.concat([batch, np.array([groups, c_in_g * taps, -1], dtype=np.int64)], 0)
    columns = ops.reshape(columns, group_shape, special_zero=False)  # [B, g, C/g*k*k, Ho*Wo]

    flat_weight = ops.reshape(weight, np.array([n, -1], dtype=np.int64), special_zero=False)
    kernel = kernel_attention(node, kernel_logits)  # [B, n], or None
    if kernel is None:
        kernels = flat_weight  # [1, O*C/g*k*k], broadcast over the batch by the MatMul below
    else:
        kernels = ops.matmul(kernel, flat_weight, False, False)  # [B, O*C/g*k*k]
    if spatial_logits is not None:
        kernels = ops.reshape(kernels, np.array([0, -1, taps], dtype=np.int64), special_zero=True)
        kernels = ops.multiply(kernels, _unsqueeze(ops.sigmoid(spatial_logits), [1]))  # [B, O*C/g, k*k]
    kernel_shape = np.array([-1, groups, out_channels // groups, c_in_g * taps], dtype=np.int64)
    kernels = ops.reshape(kernels, kernel_shape, special_zero=False)

    y = ops.matmul(kernels, columns, False, False)  # [B, g, O/g, Ho*Wo]
    y = ops.reshape(y, ops.concat([batch, np.array([out_channels], dtype=np.int64), out_size], 0), False)
    if kernel_bias is not None:  # [n, O]; without a kernel attention n is 1
        per_sample = kernel_bias if kernel is None else ops.matmul(kernel, kernel_bias, False, False)
        y = ops.add(y, _unsqueeze(per_sample, [2, 3]))
    if filter_logits is not None:
        y = ops.multiply(y, _unsqueeze(ops.sigmoid(filter_logits), [2, 3]))
    if bias is not None:
        y = ops.add(y, ops.reshape(bias, np.array([1, -1, 1, 1], dtype=np.int64), special_zero=False))
    return [y.output(0)]


def attention_logits(node, x) -> tuple:
    """The attention branch on x [B, C, H, W]: (channel, filter, spatial, kernel) logits, None for an
    attention the layer does not have (its head size is 0)."""
    fc_weight, fc_bias, head_weight, head_bias = (node.get_input(i) for i in range(2, 6))
    pooled = ops.reduce_mean(x, np.array([2, 3], dtype=np.int64), keep_dims=False)  # [B, C]
    hidden = ops.relu(ops.add(ops.matmul(pooled, fc_weight, False, True), fc_bias))  # [B, A]
    logits = ops.add(ops.matmul(hidden, head_weight, False, True), head_bias)  # [B, R]
    sizes = node.get_attribute("head_sizes")
    blocks = iter(ops.variadic_split(logits, 1, np.array([s for s in sizes if s], dtype=np.int64)).outputs())
    return tuple(next(blocks) if s else None for s in sizes)


def _columns(node, scaled, k: int):
    """im2col of scaled [B, C, H, W]: [B*C, k*k, Ho, Wo], or the input itself for a 1x1 window at stride 1
    without padding (most pointwise layers)."""
    strides, pads, dilations = (node.get_attribute(name) for name in ("strides", "pads", "dilations"))
    if k == 1 and list(strides) == [1, 1] and not any(pads):
        return scaled
    # Every input plane convolved with the k*k one-hot kernels gives its value under each tap.
    one_hot = np.eye(k * k, dtype=np.float32).reshape(k * k, 1, k, k)
    planes = ops.reshape(scaled, np.array([-1, 1, 0, 0], dtype=np.int64), special_zero=True)  # [B*C, 1, H, W]
    return ops.convolution(planes, one_hot, strides, pads[:2], pads[2:], dilations)


def kernel_attention(node, kernel_logits):
    """[B, n] weights of the n kernels, or None without a kernel attention."""
    if kernel_logits is None:
        return None
    # Version-1 files have no kernel_activation attribute: the default (softmax) is what they mean.
    activation = node.get_attribute("kernel_activation", DEFAULTS["kernel_activation"])
    if activation == KERNEL_ACTIVATION_CODES["sigmoid"]:
        return ops.sigmoid(kernel_logits)
    return ops.softmax(kernel_logits, 1)


def _dims(shape_source, start: int, stop: int):
    return ops.slice(ops.shape_of(shape_source), [start], [stop], [1])


def _unsqueeze(value, axes: list[int]):
    return ops.unsqueeze(value, np.array(axes, dtype=np.int64))
