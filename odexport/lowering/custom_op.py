"""`custom-op`: each ODConv layer is one node ``ai.odexport::ODConv2d`` carrying its own ONNX function.

The node takes the layer's folded parameters (the ODConvSpec tensors) as inputs and its hyper-parameters
as attributes, so a graph viewer shows one node per layer. ``finalize_onnx`` attaches one model-local
function, ``ODConv2d``, whose body is standard ops (at the model's opset, 17 or later) generic over
every shape and attribute: ONNX Runtime runs it with no plugin, ``onnx.inliner`` expands it for any
other runtime, and OpenVINO gets a conversion extension (odexport.openvino_extension). The node's specification is docs/custom-op.md.
"""

from __future__ import annotations

import onnx
import torch
from onnx import AttributeProto, TensorProto, helper
from torch import Tensor, nn

from ..errors import ExportError
from ..odconv import AttentionBranch, ODConvSpec, reference_forward
from .registry import register_lowering

DOMAIN = "ai.odexport"
OP_TYPE = "ODConv2d"
# Version 2 added the optional kernel_activation attribute (docs/custom-op.md: "Versions").
DOMAIN_VERSION = 2
FUNCTION_OPSET = 17  # the lowest; a model at a later opset gets a body at its own
# bias and kernel_bias are optional; a node with a kernel_bias always has a bias (zeros when the layer has none).
INPUTS = ("x", "weight", "fc_weight", "fc_bias", "head_weight", "head_bias", "bias", "kernel_bias")
OUTPUTS = ("y",)
_INTS, _INT = AttributeProto.INTS, AttributeProto.INT
ATTRIBUTES = {"strides": _INTS, "pads": _INTS, "dilations": _INTS, "group": _INT, "kernel_num": _INT,
              "head_sizes": _INTS, "kernel_activation": _INT}
# Optional attributes and the value a node without them means; the function declares these defaults
# (for files that omit them), and odexport still writes them on every node (see node_attributes).
DEFAULTS = {"kernel_activation": 0}
# kernel_activation: how the kernel logits become kernel weights.
KERNEL_ACTIVATION_CODES = {"softmax": 0, "sigmoid": 1}


def node_attributes(spec: ODConvSpec) -> dict[str, int | list[int]]:
    """The ODConv2d attributes of a layer (pads in ONNX order: begin H, begin W, end H, end W)."""
    if spec.routed:
        # The node computes its attention from x (docs/custom-op.md); routing from outside would need a
        # node input and a new domain version.
        raise ExportError("custom-op cannot write a layer whose kernel attention is given by its caller "
                          "(routed CondConv)", hint="use --lowering decomposed, dynamic-weight or folded-weight")
    if spec.head_sizes[3] == 0 and spec.kernel_num > 1:
        # The node reads an absent kernel head as a softmax over n zero logits (1/n each), which is
        # the identity only for a single kernel; a plain sum of n kernels has no encoding.
        raise ExportError(f"custom-op cannot write {spec.kernel_num} kernels without a kernel attention",
                          hint="use --lowering decomposed for this model")
    pad_h, pad_w = spec.padding
    attributes = {"strides": list(spec.stride), "pads": [pad_h, pad_w, pad_h, pad_w],
                  "dilations": list(spec.dilation), "group": spec.groups, "kernel_num": spec.kernel_num,
                  "head_sizes": list(spec.head_sizes),
                  "kernel_activation": KERNEL_ACTIVATION_CODES[spec.kernel_activation]}
    # Every attribute the body references is written, defaulted or not: onnx.inliner ignores a function's
    # attribute defaults and would leave the referencing Constant without a value.
    return attributes


def folded_weight_and_bias(spec: ODConvSpec) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """weight: [n, C_out, C_in/g, k, k] and kernel_bias [n, C_out] with the post-layer scale folded in
    (every attention scales whole output channels or whole kernels, so the scale commutes); bias:
    [C_out], zeros when the layer has a kernel bias but no bias (the node's inputs are positional), or None.
    """
    weight, kernel_bias, bias = spec.weight, spec.kernel_bias, spec.out_bias
    if spec.out_scale is not None:
        weight = weight * spec.out_scale.reshape(1, -1, 1, 1, 1)
        kernel_bias = None if kernel_bias is None else kernel_bias * spec.out_scale
    if kernel_bias is not None and bias is None:
        bias = torch.zeros(spec.out_channels)
    return weight, bias, kernel_bias


class _ODConv2dOp(torch.autograd.Function):
    """Eager: the reference formula. Traced by the TorchScript exporter: one ODConv2d node (the
    torch.export-based exporter takes odconv2d_operator instead)."""

    @staticmethod
    def forward(ctx, x, weight, fc_weight, fc_bias, head_weight, head_bias, bias, kernel_bias, spec):
        # The tensors are inputs only so that the exported node references them as initializers.
        return reference_forward(spec, x)

    @staticmethod
    def symbolic(g, x, weight, fc_weight, fc_bias, head_weight, head_bias, bias, kernel_bias, spec):
        optional = [tensor for tensor in (bias, kernel_bias) if tensor is not None]
        inputs = [x, weight, fc_weight, fc_bias, head_weight, head_bias] + optional
        attributes = {f"{name}_i": value for name, value in node_attributes(spec).items()}
        y = g.op(f"{DOMAIN}::{OP_TYPE}", *inputs, **attributes)
        # Custom ops have no shape function in the exporter: give the output its rank and channels so
        # that the ops after it (Flatten, Add ...) export; batch, height and width stay symbolic.
        y.setType(x.type().with_sizes([None, spec.out_channels, None, None]))
        return y


class CustomOpODConv(nn.Module):
    def __init__(self, spec: ODConvSpec) -> None:
        super().__init__()
        node_attributes(spec)  # fails here, before tracing, on a layer the node cannot encode
        self.spec = spec
        attention = AttentionBranch(spec)
        weight, bias, kernel_bias = folded_weight_and_bias(spec)
        self.register_buffer("weight", weight.clone())
        for name in ("fc_weight", "fc_bias", "head_weight", "head_bias"):
            self.register_buffer(name, getattr(attention, name))
        self.register_buffer("bias", None if bias is None else bias.clone())
        self.register_buffer("kernel_bias", None if kernel_bias is None else kernel_bias.clone())

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, H_out, W_out]"""
        tensors = (x, self.weight, self.fc_weight, self.fc_bias, self.head_weight, self.head_bias, self.bias,
                   self.kernel_bias)
        if torch.compiler.is_exporting():  # torch.export: an operator it keeps whole (translated below)
            attributes = {name: DEFAULTS.get(name) for name in ATTRIBUTES} | node_attributes(self.spec)
            return torch.ops.odexport.odconv2d(*tensors, *(attributes[name] for name in ATTRIBUTES))
        return _ODConv2dOp.apply(*tensors, self.spec)


# For the torch.export-based exporter: ODConv2d as a torch operator (inputs and attributes as the node has
# them), which the export keeps as one call, and an onnxscript translation writing that call as the node.
@torch.library.custom_op("odexport::odconv2d", mutates_args=())
def odconv2d_operator(x: Tensor, weight: Tensor, fc_weight: Tensor, fc_bias: Tensor, head_weight: Tensor,
                      head_bias: Tensor, bias: Tensor | None, kernel_bias: Tensor | None, strides: list[int],
                      pads: list[int], dilations: list[int], group: int, kernel_num: int, head_sizes: list[int],
                      kernel_activation: int) -> Tensor:
    """The node's semantics (docs/custom-op.md) on its inputs and attributes."""
    n, out_channels, per_group, k, _ = weight.shape
    activation = next(name for name, code in KERNEL_ACTIVATION_CODES.items() if code == kernel_activation)
    spec = ODConvSpec(per_group * group, out_channels, k, tuple(strides), (pads[0], pads[1]), tuple(dilations),
                      group, n, weight, fc_weight, fc_bias, head_weight, head_bias, tuple(head_sizes),
                      out_bias=bias, kernel_bias=kernel_bias, kernel_activation=activation)
    return reference_forward(spec, x)


@odconv2d_operator.register_fake
def _odconv2d_shape(x, weight, fc_weight, fc_bias, head_weight, head_bias, bias, kernel_bias, strides, pads,
                    dilations, group, kernel_num, head_sizes, kernel_activation) -> Tensor:
    """[B, O, H_out, W_out], sizes as Conv computes them (B, H and W may be symbolic)."""
    k = weight.shape[-1]
    height, width = ((x.shape[2 + i] + pads[i] + pads[2 + i] - dilations[i] * (k - 1) - 1) // strides[i] + 1
                     for i in (0, 1))
    return x.new_empty(x.shape[0], weight.shape[1], height, width)


def node_schema():
    """The ONNX schema of ODConv2d, which onnxscript needs to write a node of it (not registered globally:
    ONNX's shape inference would then prefer it to the model's function body)."""
    from onnx.defs import OpSchema  # beside the onnxscript import it serves: only the dynamo exporter asks

    optional = OpSchema.FormalParameterOption.Optional
    inputs = [OpSchema.FormalParameter(name, "T", param_option=optional if name in ("bias", "kernel_bias")
                                       else OpSchema.FormalParameterOption.Single) for name in INPUTS]
    types = {_INTS: OpSchema.AttrType.INTS, _INT: OpSchema.AttrType.INT}
    attributes = [OpSchema.Attribute(name, types[kind], required=name not in DEFAULTS) for name, kind in ATTRIBUTES.items()]
    return OpSchema(OP_TYPE, DOMAIN, DOMAIN_VERSION, inputs=inputs, outputs=[OpSchema.FormalParameter("y", "T")],
                    type_constraints=[("T", ["tensor(float)"], "")], attributes=attributes)


def translate_odconv2d(x, weight, fc_weight, fc_bias, head_weight, head_bias, bias, kernel_bias, strides, pads,
                       dilations, group, kernel_num, head_sizes, kernel_activation):
    """onnxscript: the operator call as one ai.odexport::ODConv2d node, attributes as node_attributes writes them."""
    from onnxscript.values import Op, Opset  # lazy: onnxscript takes seconds to import; only dynamo needs it

    inputs = [x, weight, fc_weight, fc_bias, head_weight, head_bias] + [t for t in (bias, kernel_bias) if t is not None]
    attributes = {"strides": strides, "pads": pads, "dilations": dilations, "group": group,
                  "kernel_num": kernel_num, "head_sizes": head_sizes, "kernel_activation": kernel_activation}
    # Every attribute is written, defaults included: a bare inliner need not apply a function's defaults.
    return Op(Opset(DOMAIN, DOMAIN_VERSION), OP_TYPE, node_schema())(*inputs, **attributes)


class _Body:
    """Collects the function body: each call adds one node and returns its output name(s)."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []

    def __call__(self, op_type: str, *inputs: str, outputs: int = 1, refs: dict[str, str] | None = None, **attrs):
        """refs: {node attribute: function attribute it takes its value from}"""
        names = [f"{op_type.lower()}{len(self.nodes)}" + (f"_{i}" if outputs > 1 else "") for i in range(outputs)]
        node = helper.make_node(op_type, list(inputs), names, **attrs)
        for name, source in (refs or {}).items():
            node.attribute.append(helper.make_attribute_ref(name, ATTRIBUTES[source], ref_attr_name=source))
        self.nodes.append(node)
        return names if outputs > 1 else names[0]

    def ints(self, *values: int) -> str:
        return self("Constant", value_ints=list(values))

    def shape(self, *parts: str | int) -> str:
        """A 1-D int64 shape from run-time sizes (names of [1] tensors) and literal ints."""
        return self("Concat", *(self.ints(part) if isinstance(part, int) else part for part in parts), axis=0)

    def scalar(self, value: float) -> str:
        return self("Constant", value=helper.make_tensor("value", TensorProto.FLOAT, [], [value]))

    def optional(self, name: str, shape: str) -> str:
        """The optional input ``name``, or zeros of ``shape`` when the node omits it.

        A body cannot test whether an input was given, but LayerNormalization's bias may be missing and
        normalizing zeros gives exactly 0: the result is the input or zeros. (Gemm's C would do the same
        in ONNX, but once inlined the missing input is spelled "", which OpenVINO's Gemm reads as an input
        of unknown rank.)
        """
        zeros = self("ConstantOfShape", shape)
        ones = self("ConstantOfShape", shape, value=helper.make_tensor("value", TensorProto.FLOAT, [1], [1.0]))
        return self("LayerNormalization", zeros, ones, name, axis=0)


def odconv2d_function(opset: int = FUNCTION_OPSET) -> onnx.FunctionProto:
    """The body of ai.odexport::ODConv2d: the reference formula in standard ops, every size read at run time.
    opset: the model's standard opset, which a function body must import too (17 or later).

    x: [B, C, H, W], weight: [n, O, C/g, k, k] -> y: [B, O, H_out, W_out]
    """
    op = _Body()
    x, weight, _, _, _, _, bias, kernel_bias = INPUTS
    batch = op("Shape", x, start=0, end=1)
    n, out_channels, c_in_g, k = (op("Shape", weight, start=i, end=i + 1) for i in range(4))
    taps = op("Mul", k, k)  # k*k
    groups = op("Unsqueeze", op("Constant", refs={"value_int": "group"}), op.ints(0))
    per_group_columns = op("Mul", c_in_g, taps)  # C/g * k*k
    channel, filter_, spatial, kernel = _attentions(op, opset, n, out_channels, taps)
    columns, out_size = _columns(op, channel, k, taps, batch, groups, per_group_columns)

    # Per-sample kernels: sum_n kernel[b, n] * W[n] as one MatMul, then the spatial attention per tap.
    kernels = op("MatMul", kernel, op("Reshape", weight, op.shape(n, -1)))  # [B, O*C/g*k*k]
    kernels = op("Reshape", kernels, op.shape(batch, -1, taps))  # [B, O*C/g, k*k]
    kernels = op("Mul", kernels, op("Unsqueeze", spatial, op.ints(1)))
    kernels = op("Reshape", kernels, op.shape(batch, groups, -1, per_group_columns))

    y = op("MatMul", kernels, columns)  # [B, g, O/g, Ho*Wo]
    y = op("Reshape", y, op.shape(batch, out_channels, out_size))  # [B, O, Ho, Wo]
    kernel_bias = op.optional(kernel_bias, op.shape(n, out_channels))  # [n, O]
    y = op("Add", y, op("Unsqueeze", op("MatMul", kernel, kernel_bias), op.ints(2, 3)))
    y = op("Mul", y, op("Unsqueeze", filter_, op.ints(2, 3)))
    bias = op.optional(bias, out_channels)  # [O]
    op.nodes.append(helper.make_node("Add", [y, op("Reshape", bias, op.ints(1, -1, 1, 1))], list(OUTPUTS)))

    return helper.make_function(
        DOMAIN, OP_TYPE, list(INPUTS), list(OUTPUTS), op.nodes,
        [helper.make_opsetid("", opset)], attributes=[name for name in ATTRIBUTES if name not in DEFAULTS],
        attribute_protos=[helper.make_attribute(name, value) for name, value in DEFAULTS.items()],
        doc_string="ODConv (omni-dimensional dynamic convolution), specified in odexport docs/custom-op.md",
    )


def _attentions(op: "_Body", opset: int, n: str, out_channels: str, taps: str) -> tuple[str, str, str, str]:
    """The four attentions of the body's input x: channel [B, C], filter [B, O], spatial [B, k*k], kernel
    [B, n]. An absent head (size 0) gives an empty logit block, padded here to the identity: a sigmoid gate
    of 1, or a zero logit for the single kernel's softmax (which is exactly 1)."""
    x, _, fc_weight, fc_bias, head_weight, head_bias, _, _ = INPUTS
    # Opset 18 turned ReduceMean's axes from an attribute into an input; no other op of the body changed.
    pooled = (op("ReduceMean", x, op.ints(2, 3), keepdims=0) if opset >= 18
              else op("ReduceMean", x, axes=[2, 3], keepdims=0))  # [B, C]
    hidden = op("Relu", op("Gemm", pooled, fc_weight, fc_bias, transB=1))  # [B, A]
    logits = op("Gemm", hidden, head_weight, head_bias, transB=1)  # [B, R]
    sizes = op("Constant", refs={"value_ints": "head_sizes"})
    channel_logits, filter_logits, spatial_logits, kernel_logits = op("Split", logits, sizes, axis=1, outputs=4)

    def pad_to(block: str, width: str, value: str | None) -> str:
        """[B, size] -> [B, width], padded on the right with value (0 when None)."""
        size = op("Shape", block, start=1, end=2)
        pads = op.shape(0, 0, 0, op("Sub", width, size))
        return op("Pad", block, pads, value) if value else op("Pad", block, pads)

    one = op.scalar(1.0)
    channel = pad_to(op("Sigmoid", channel_logits), op("Shape", x, start=1, end=2), one)  # [B, C]
    filter_ = pad_to(op("Sigmoid", filter_logits), out_channels, one)  # [B, O]
    spatial = pad_to(op("Sigmoid", spatial_logits), taps, one)  # [B, k*k]
    # The kernel attention's activation is an attribute and a body cannot branch on one: both are
    # computed on the tiny [B, n] logits and Where picks (a scalar condition broadcast over the batch).
    kernel_logits = pad_to(kernel_logits, n, None)
    is_sigmoid = op("Equal", op("Constant", refs={"value_int": "kernel_activation"}),
                    op("Constant", value_int=KERNEL_ACTIVATION_CODES["sigmoid"]))
    kernel = op("Where", is_sigmoid, op("Sigmoid", kernel_logits), op("Softmax", kernel_logits, axis=1))  # [B, n]
    return channel, filter_, spatial, kernel


def _columns(op: "_Body", channel: str, k: str, taps: str, batch: str, groups: str,
             per_group_columns: str) -> tuple[str, str]:
    """im2col of x scaled by the channel attention, for any k, stride, padding and dilation: each input
    plane convolved with k*k one-hot kernels (rows of an identity) gives the plane's value under each
    kernel tap. -> columns [B, g, C/g*k*k, Ho*Wo] and the output size [Ho, Wo]."""
    x = INPUTS[0]
    one_hot = op("EyeLike", op("ConstantOfShape", op.shape(taps, taps)))  # [k*k, k*k]
    one_hot = op("Reshape", one_hot, op.shape(taps, 1, k, k))  # [k*k, 1, k, k]
    scaled = op("Mul", x, op("Unsqueeze", channel, op.ints(2, 3)))  # [B, C, H, W]
    planes = op("Reshape", scaled, op.ints(-1, 1, 0, 0))  # [B*C, 1, H, W]
    window = {name: name for name in ("strides", "pads", "dilations")}
    columns = op("Conv", planes, one_hot, refs=window)  # [B*C, k*k, Ho, Wo]
    out_size = op("Shape", columns, start=2, end=4)
    return op("Reshape", columns, op.shape(batch, groups, per_group_columns, -1)), out_size


def attach_function(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give a model with ODConv2d nodes the function body and the domain's opset import."""
    if not any(node.domain == DOMAIN and node.op_type == OP_TYPE for node in model.graph.node):
        return model
    ours = [f for f in model.functions if (f.domain, f.name) == (DOMAIN, OP_TYPE)]
    for function in ours:  # finalizing twice keeps exactly one body
        model.functions.remove(function)
    standard = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    model.functions.append(odconv2d_function(standard))
    imports = {opset.domain: opset for opset in model.opset_import}
    if DOMAIN in imports:
        imports[DOMAIN].version = DOMAIN_VERSION
    else:
        model.opset_import.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    return model


@register_lowering(
    "custom-op",
    "one ai.odexport::ODConv2d node per layer, with an ONNX function body (OpenVINO via an extension)",
    dynamic_batch=True,
    constant_weights=False,
    finalize_onnx=attach_function,
    dynamo_translations={torch.ops.odexport.odconv2d.default: translate_odconv2d},
)
def build_custom_op(spec: ODConvSpec) -> nn.Module:
    return CustomOpODConv(spec)
