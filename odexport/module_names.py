"""Node, tensor and dimension names for graphs written by the torch.export-based exporter, as the
TorchScript exporter writes them.

The TorchScript exporter names a node after the module that produced it (``/layer3/layer3.0/conv1/Conv``)
and its outputs after the node (``/layer3/layer3.0/conv1/Conv_output_0``); inspect, verify's layer
localisation, profile and quantization find a module's nodes and output by that prefix
(onnx_scope, below). The torch.export-based exporter names nodes after aten ops
(``node_Conv_12``) and records the module path in each node's metadata (``pkg.torch.onnx.name_scopes``:
``['', 'layer3', 'layer3.0', 'layer3.0.conv1', 'conv2d']``). Renaming from that metadata gives its graphs
the same names, so everything downstream reads both exporters' graphs alike.
"""

from __future__ import annotations

import ast
import re
from collections import Counter

import onnx

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
_SYMBOL = re.compile(r"\b(s\d+)\b")  # torch.export's names for symbolic sizes: s0, s77
# A module called again in one forward gets "@1", "@2" appended to its path in the metadata.
_REPEAT = re.compile(r"@\d+$")


def onnx_scope(path: str) -> str:
    """The node-name prefix the TorchScript exporter gives a module's nodes.

    "features.1.conv.0.0" -> "/features/features.1/conv/conv.0/conv.0.0/" (a Sequential index is joined
    to its parent's name).
    """
    segments: list[str] = []
    for part in path.split("."):
        segments.append(f"{segments[-1]}.{part}" if part.isdigit() and segments else part)
    return "/" + "/".join(segments) + "/"


def module_path(node: onnx.NodeProto) -> str | None:
    """The path of the module whose forward produced ``node`` ("" for the root), or None when the node
    has no scope metadata (the optimiser's constants)."""
    scopes = next((prop.value for prop in node.metadata_props if prop.key == NAME_SCOPES), None)
    if scopes is None:
        return None
    modules = ast.literal_eval(scopes)[1:-1]  # drop the root's "" and the op's own name
    return _REPEAT.sub("", modules[-1]) if modules else ""


def name_nodes_by_module(model: onnx.ModelProto) -> None:
    """Rename ``model``'s nodes and their output tensors in place after their modules, as the TorchScript
    exporter names them; drop the per-node metadata (stack traces with the exporting machine's paths)."""
    graph = model.graph
    kept = {value.name for value in (*graph.input, *graph.output, *graph.initializer)}
    taken: Counter[str] = Counter()
    renamed: dict[str, str] = {}
    for node in graph.node:
        path = module_path(node)
        del node.metadata_props[:]
        if path is None:
            continue
        base = ("/" if not path else onnx_scope(path)) + node.op_type
        node.name = base if not taken[base] else f"{base}_{taken[base]}"
        taken[base] += 1
        renamed |= {tensor: f"{node.name}_output_{i}" for i, tensor in enumerate(node.output)
                    if tensor and tensor not in kept}
    for node in graph.node:
        node.input[:] = [renamed.get(tensor, tensor) for tensor in node.input]
        node.output[:] = [renamed.get(tensor, tensor) for tensor in node.output]
    for value in graph.value_info:
        value.name = renamed.get(value.name, value.name)


def name_input_dims(model: onnx.ModelProto, names: dict[int, str]) -> None:
    """Give the symbolic dims of the first input the names in ``names`` ({axis: "batch"}), everywhere:
    torch.export names them s0, s77, and a shape downstream is an expression of them ("((s16 - 7)//2) + 1")."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    renamed = {dims[axis].dim_param: name for axis, name in names.items() if dims[axis].dim_param}
    graph = model.graph
    for value in (*graph.input, *graph.output, *graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = _SYMBOL.sub(lambda match: renamed.get(match.group(1), match.group(1)), dim.dim_param)
