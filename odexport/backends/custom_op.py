"""Custom-op ``ai.odexport::ODConv2d`` nodes in ONNX files, for a backend that cannot run them as they are:
each node replaced by its model-local function body (plain opset-17 ops).
"""

from __future__ import annotations

import onnx
import onnx.inliner

from ..lowering.custom_op import DOMAIN, OP_TYPE


def has_odconv_functions(model: onnx.ModelProto) -> bool:
    return any((function.domain, function.name) == (DOMAIN, OP_TYPE) for function in model.functions)


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
