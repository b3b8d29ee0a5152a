"""OpenVINO support for ``ai.odexport::ODConv2d`` nodes (the `custom-op` lowering).

OpenVINO's ONNX frontend does not expand model-local functions of a custom domain ("No conversion rule
found for operations: ai.odexport.ODConv2d"). Two ways in, equivalent in results:

- :func:`odconv_conversion_extension`: a frontend conversion rule that builds the node from OpenVINO ops
  (``core.add_extension(...)`` before ``read_model``, or ``ov.convert_model(path, extension=...)``);
- expand the function bodies into the graph: ``onnx.inliner.inline_local_functions`` on files odexport
  writes, :func:`inline_odconv_functions` also on files written by earlier releases.

The rule implements docs/custom-op.md, the same math as the function body; being written at conversion
time it knows every size that does not depend on the input, so absent attentions are simply left out.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.inliner
import openvino.opset13 as ops
from openvino.frontend.onnx import ConversionExtension

from ...lowering.custom_op import DEFAULTS, DOMAIN, KERNEL_ACTIVATION_CODES, OP_TYPE


def odconv_conversion_extension():
    """An ``openvino.frontend.onnx.ConversionExtension`` for ai.odexport::ODConv2d."""
    return ConversionExtension(OP_TYPE, DOMAIN, _convert_odconv2d)


def inline_odconv_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every ODConv2d node replaced by its function body (plain opset-17 ops).

    For files odexport writes now the bare ``onnx.inliner`` does the same; the two repairs here are for
    files of earlier releases (softmax nodes without kernel_activation, a body reading the bias as Gemm's C).
    """
    model = _with_default_attributes(model)
    inlined = onnx.inliner.inline_selected_functions(model, [(DOMAIN, OP_TYPE)])
    # The inliner writes a missing optional input (ODConv2d's bias) as "". That means "absent" in ONNX,
    # but OpenVINO's Gemm converter reads a trailing "" as a real input; a shorter input list means
    # the same and converts everywhere.
    for node in inlined.graph.node:
        while node.input and not node.input[-1]:
            node.input.pop()
    return inlined


def _with_default_attributes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose ODConv2d nodes spell out every attribute the function declares a default for.

    onnx.inliner (1.23) ignores a function's attribute defaults: an attribute left off the node leaves
    the body's referencing node without its value (a Constant with no value).
    """
    defaults = [attribute for function in model.functions if (function.domain, function.name) == (DOMAIN, OP_TYPE)
                for attribute in function.attribute_proto]
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for node in model.graph.node:
        if (node.domain, node.op_type) == (DOMAIN, OP_TYPE):
            given = {attribute.name for attribute in node.attribute}
            node.attribute.extend(default for default in defaults if default.name not in given)
    return model


def _convert_odconv2d(node) -> list:
    """node: an openvino NodeContext of one ODConv2d; returns its output [B, O, Ho, Wo]."""
    x, weight, fc_weight, fc_bias, head_weight, head_bias = (node.get_input(i) for i in range(6))
    bias = node.get_input(6) if node.get_input_size() > 6 else None
    kernel_bias = node.get_input(7) if node.get_input_size() > 7 else None
    n, out_channels, c_in_g, k, _ = (dim.get_length() for dim in weight.get_partial_shape())
    groups = node.get_attribute("group")
    strides, pads, dilations = (node.get_attribute(name) for name in ("strides", "pads", "dilations"))
    taps = k * k

    def dims(shape_source, start: int, stop: int):
        return ops.slice(ops.shape_of(shape_source), [start], [stop], [1])

    def unsqueeze(value, axes: list[int]):
        return ops.unsqueeze(value, np.array(axes, dtype=np.int64))

    pooled = ops.reduce_mean(x, np.array([2, 3], dtype=np.int64), keep_dims=False)  # [B, C]
    hidden = ops.relu(ops.add(ops.matmul(pooled, fc_weight, False, True), fc_bias))  # [B, A]
    logits = ops.add(ops.matmul(hidden, head_weight, False, True), head_bias)  # [B, R]
    sizes = node.get_attribute("head_sizes")
    blocks = iter(ops.variadic_split(logits, 1, np.array([s for s in sizes if s], dtype=np.int64)).outputs())
    channel_logits, filter_logits, spatial_logits, kernel_logits = (next(blocks) if s else None for s in sizes)

    scaled = x if channel_logits is None else ops.multiply(x, unsqueeze(ops.sigmoid(channel_logits), [2, 3]))
    batch = dims(x, 0, 1)
    if k == 1 and list(strides) == [1, 1] and not any(pads):
        columns = scaled  # a 1x1 window at stride 1 is the input itself: no im2col (most pointwise layers)
    else:
        # im2col: every input plane convolved with the k*k one-hot kernels gives its value under each tap.
        one_hot = np.eye(taps, dtype=np.float32).reshape(taps, 1, k, k)
        planes = ops.reshape(scaled, np.array([-1, 1, 0, 0], dtype=np.int64), special_zero=True)  # [B*C, 1, H, W]
        columns = ops.convolution(planes, one_hot, strides, pads[:2], pads[2:], dilations)  # [B*C, k*k, Ho, Wo]
    out_size = dims(columns, 2, 4)
    group_shape = ops.concat([batch, np.array([groups, c_in_g * taps, -1], dtype=np.int64)], 0)
    columns = ops.reshape(columns, group_shape, special_zero=False)  # [B, g, C/g*k*k, Ho*Wo]

    flat_weight = ops.reshape(weight, np.array([n, -1], dtype=np.int64), special_zero=False)
    # Version-1 files have no kernel_activation attribute: the default (softmax) is what they mean.
    activation = node.get_attribute("kernel_activation", DEFAULTS["kernel_activation"])
    sigmoid_kernel = activation == KERNEL_ACTIVATION_CODES["sigmoid"]
    kernel = None  # [B, n]
    if kernel_logits is not None:
        kernel = ops.sigmoid(kernel_logits) if sigmoid_kernel else ops.softmax(kernel_logits, 1)
    if kernel is None:
        kernels = flat_weight  # [1, O*C/g*k*k], broadcast over the batch by the MatMul below
    else:
        kernels = ops.matmul(kernel, flat_weight, False, False)  # [B, O*C/g*k*k]
    if spatial_logits is not None:
        kernels = ops.reshape(kernels, np.array([0, -1, taps], dtype=np.int64), special_zero=True)
        kernels = ops.multiply(kernels, unsqueeze(ops.sigmoid(spatial_logits), [1]))  # [B, O*C/g, k*k]
    kernel_shape = np.array([-1, groups, out_channels // groups, c_in_g * taps], dtype=np.int64)
    kernels = ops.reshape(kernels, kernel_shape, special_zero=False)

    y = ops.matmul(kernels, columns, False, False)  # [B, g, O/g, Ho*Wo]
    y = ops.reshape(y, ops.concat([batch, np.array([out_channels], dtype=np.int64), out_size], 0), False)
    if kernel_bias is not None:  # [n, O]; without a kernel attention n is 1
        per_sample = kernel_bias if kernel is None else ops.matmul(kernel, kernel_bias, False, False)
        y = ops.add(y, unsqueeze(per_sample, [2, 3]))
    if filter_logits is not None:
        y = ops.multiply(y, unsqueeze(ops.sigmoid(filter_logits), [2, 3]))
    if bias is not None:
        y = ops.add(y, ops.reshape(bias, np.array([1, -1, 1, 1], dtype=np.int64), special_zero=False))
    return [y.output(0)]
