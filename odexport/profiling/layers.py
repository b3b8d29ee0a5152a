"""Per-layer times attributed to PyTorch modules and split into ODConv attention, ODConv convolution and
the rest.

Both runtimes name what they time after ONNX nodes, and the TorchScript exporter names each ONNX node
after its module (``/layer1/layer1.0/conv1/attention/fc/Conv``, see
:func:`odexport.module_names.onnx_scope`). Every lowering keeps an ODConv layer's attention branch in a
submodule named ``attention``; everything else inside the layer's scope is its convolution. A node whose
name carries no scope (an optimiser's ``Slice_0``, OpenVINO's ``Multiply_123``) is attributed to the
module of the node feeding it when the runtime tells us that, else counted as unattributed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..backends.base import NodeTime


ATTENTION = "odconv attention"
CONVOLUTION = "odconv convolution"
OTHER = "other"
CATEGORIES = (ATTENTION, CONVOLUTION, OTHER)
UNATTRIBUTED = "(unattributed)"
TOP_LEVEL = "(top level)"
# The submodule holding an ODConv layer's attention branch, in the official layer and in every lowering.
ATTENTION_MODULE = "attention"


@dataclass(frozen=True)
class LayerTime:
    """Time of one PyTorch module (for an ODConv layer: of its attention, or of its convolution).

    module: the module path ("layer1.0.conv1"), or UNATTRIBUTED; nodes: how many runtime nodes;
    exec_types: the kernels that ran them (OpenVINO's exec_type, ONNX Runtime's op types); op_ms: ms by
    what the nodes are ({"Convolution": 0.9, "Concat": 0.2}): OpenVINO's kernel names do not say it
    ("jit_avx2_I8"), and a layer's time splits by it."""

    module: str
    category: str
    ms: float
    nodes: int
    exec_types: tuple[str, ...]
    op_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerBreakdown:
    """layers: slowest first. reference_kernels: nodes that ran a reference (``ref_*``) kernel, OpenVINO's
    slow generic fallback."""

    runtime: str
    runs: int
    total_ms: float
    by_category: dict[str, float]
    layers: tuple[LayerTime, ...]
    reference_kernels: tuple[NodeTime, ...] = ()

    def top(self, count: int) -> tuple[LayerTime, ...]:
        return self.layers[:count]


def module_path(node_name: str) -> str | None:
    """"/layer1/layer1.0/conv1/attention/fc/Conv" -> "layer1.0.conv1.attention.fc"; None without a scope, ""
    for a node of the top-level module itself ("/Add").

    The inverse of onnx_scope: a segment that extends the one before it ("layer1" then "layer1.0")
    replaces it, and the path ends before the first segment that is not a module name: the ONNX node's
    own name is its op type (CamelCase, "Conv_1"), and OpenVINO appends to it ("Conv/WithoutBiases",
    "Conv_acdb_abcd_/next/Node" for a layout reorder), whereas module names are lower-case attributes."""
    if not node_name.startswith("/"):
        return None
    path: list[str] = []
    for segment in node_name.split("/")[1:-1]:
        if not segment or segment[0].isupper() or "_abcd" in segment or "_acdb" in segment:
            break
        if path and segment.startswith(path[-1] + "."):
            path[-1] = segment
        else:
            path.append(segment)
    return ".".join(path)  # "" for a node of the top-level module's own forward


def classify(module: str | None, odconv_layers: list[str]) -> tuple[str, str]:
    """(module path to report, category) of a node inside ``module``."""
    if module is None:
        return UNATTRIBUTED, OTHER
    if module == "" and "" not in odconv_layers:
        return TOP_LEVEL, OTHER
    for layer in odconv_layers:
        if module == layer or module.startswith(layer + "."):
            inside = module[len(layer) + 1:]
            if inside == ATTENTION_MODULE or inside.startswith(ATTENTION_MODULE + "."):
                return layer, ATTENTION
            return layer, CONVOLUTION
    return module, OTHER


def scope_of(names: list[str]) -> str | None:
    """The first of a node's names (its own, then the names of nodes fused into it) that has a scope."""
    return next((name for name in names if name.startswith("/")), None)


def breakdown(runtime: str, runs: int, nodes: list[NodeTime], places: dict[str, str | None],
              odconv_layers: list[str]) -> LayerBreakdown:
    """Group ``nodes`` by module. places: {node name: a scoped node name it belongs to} for nodes whose own
    name has no scope (from the runtime's graph); odconv_layers: module paths of the ODConv layers."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    kernels: dict[tuple[str, str], set[str]] = defaultdict(set)
    op_ms: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    # Longest paths first, so that a layer nested in another ODConv path is not claimed by its parent.
    layers = sorted(odconv_layers, key=len, reverse=True)
    for node in nodes:
        place = node.name if node.name.startswith("/") else places.get(node.name)
        key = classify(module_path(place) if place else None, layers)
        counts[key] += 1
        kernels[key].add(node.exec_type)
        op_ms[key][node.op] += node.ms
    rows = sorted((LayerTime(*key, sum(ops.values()), counts[key], tuple(sorted(kernels[key])),
                             dict(sorted(ops.items()))) for key, ops in op_ms.items()), key=lambda row: -row.ms)
    by_category = {category: 0.0 for category in CATEGORIES}
    for row in rows:
        by_category[row.category] += row.ms
    reference = tuple(node for node in nodes if node.exec_type.startswith("ref"))
    return LayerBreakdown(runtime, runs, sum(by_category.values()), by_category, tuple(rows), reference)


def places(graph: list[tuple[str, list[str], list[str], list[str]]]) -> dict[str, str | None]:
    """{node name: the scoped name it belongs to} for graph = [(name, input tensors, output tensors, names
    of the nodes it was made of)] in execution order.

    A node without a scope of its own belongs where its first consumer with one belongs (a reorder or a
    split serves the node after it; a custom-op layer's inner nodes all feed its scoped output node),
    failing that where its producer does."""
    consumers: dict[str, list[int]] = defaultdict(list)
    for index, (_, inputs, _, _) in enumerate(graph):
        for tensor in inputs:
            consumers[tensor].append(index)
    found: list[str | None] = [scope_of(names) for _, _, _, names in graph]
    for index in reversed(range(len(graph))):
        if found[index] is None:
            found[index] = next((found[user] for tensor in graph[index][2] for user in consumers[tensor]
                                 if found[user] is not None), None)
    producer: dict[str, int] = {tensor: index for index, (_, _, outputs, _) in enumerate(graph) for tensor in outputs}
    for index, (_, inputs, _, _) in enumerate(graph):
        if found[index] is None:
            found[index] = next((found[producer[t]] for t in inputs if t in producer and found[producer[t]]), None)
    return {name: place for (name, _, _, _), place in zip(graph, found)}
