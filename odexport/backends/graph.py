"""An artifact's dataflow as a runtime names it (each backend reads its own format into a TensorGraph), and which of its tensors holds a PyTorch module's output.

The TorchScript ONNX exporter names each node after the module that produced it
(``/layer3/layer3.0/conv1/Conv``, see :func:`odexport.inspection.onnx_scope`), and onnxsim and OpenVINO
keep those names. So a module's output is the tensor that the nodes of its scope hand to a node outside
the scope, or to the graph's outputs. Optimisers rename or remove some tensors; a module whose output
cannot be told apart that way has no tensor (None), and callers skip it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import onnx

from ..errors import InputError
from ..module_names import onnx_scope

# Node names the exporter did not write (onnxsim's "Slice_0", OpenVINO's "Multiply_1234") carry no
# scope. Such a node takes the place of the node computing its input (TensorGraph._places); one that
# still has none may sit inside any module, so it counts neither as inside nor as outside one.
SCOPED = "/"
_CONSTANT_OPS = frozenset({"Constant"})  # ONNX and OpenVINO spell it alike


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class TensorGraph:
    """nodes: in the runtime's order. names: tensor id -> every name the runtime accepts for it (OpenVINO
    tensors may have several); a tensor without names cannot be requested. non_float: tensors known to
    hold shapes or indices, never a module's output."""

    nodes: tuple[Node, ...]
    outputs: frozenset[str]
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    non_float: frozenset[str] = frozenset()

    def module_output(self, path: str) -> str | None:
        """The tensor holding the output of the module at ``path`` ("layer3.0.conv1"), or None."""
        scope = onnx_scope(path)
        produced = {t for node, place in zip(self.nodes, self._places) if place.startswith(scope)
                    and node.op not in _CONSTANT_OPS for t in node.outputs}
        if not produced:
            return None
        leaving = {t for t in produced if t in self.outputs or any(
            user.startswith(SCOPED) and not user.startswith(scope) for user in self._users.get(t, ()))}
        # A tensor named after another scope was renamed by a fusion (e.g. a Conv that absorbed the
        # following Relu hands on the Relu's tensor): it is not this module's output.
        candidates = [t for t in leaving if t in self.names and t not in self.non_float
                      and (t.startswith(scope) or t in self.outputs)]
        return candidates[0] if len(candidates) == 1 else None

    @cached_property
    def _places(self) -> list[str]:
        """Each node's name, or for a node without a scope the place of the node computing its first
        non-constant input: onnxsim's im2col "Slice_0" stays inside its ODConv layer, and OpenVINO's
        output node renamed "logits" inside the classifier."""
        producer_place: dict[str, str] = {}
        places = []
        for node in self.nodes:
            place = node.name
            if not place.startswith(SCOPED):
                place = next((producer_place[t] for t in node.inputs if t in producer_place), place)
            places.append(place)
            if node.op not in _CONSTANT_OPS:
                producer_place.update((t, place) for t in node.outputs)
        return places

    @cached_property
    def _users(self) -> dict[str, list[str]]:
        """tensor -> places of the nodes reading it."""
        users: dict[str, list[str]] = defaultdict(list)
        for node, place in zip(self.nodes, self._places):
            for tensor in node.inputs:
                users[tensor].append(place)
        return users


def read_onnx_graph(path: Path) -> TensorGraph:
    """An ONNX file's graph, for every backend that runs ONNX files."""
    model = onnx.load(str(path), load_external_data=False)
    try:
        typed = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # unknown custom ops: types stay unknown, and nothing is excluded for its type
        typed = model.graph
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
    non_float = frozenset(
        info.name for info in (*typed.value_info, *typed.input, *typed.output)
        if info.type.tensor_type.elem_type and info.type.tensor_type.elem_type not in floats
    )
    nodes = tuple(Node(n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node)
    names = {t: (t,) for node in nodes for t in node.outputs if t}
    return TensorGraph(nodes, frozenset(o.name for o in model.graph.output), names, non_float)


def with_outputs(model_file: Path, tensors: list[str], workdir: Path) -> Path:
    """A copy of an ONNX file whose graph outputs include ``tensors`` (for any backend reading ONNX)."""
    model = onnx.load(str(model_file))
    present = {output.name for output in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in tensors if name not in present)
    copy = workdir / f"{model_file.stem}.exposed.onnx"
    onnx.save(model, str(copy))
    return copy


def onnx_io(path: Path) -> tuple[list[tuple[str, tuple]], tuple[str, ...]]:
    """An ONNX file's [(input name, shape with None for a dynamic axis)] and output names."""
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as error:
        raise InputError(f"{path}: not a readable ONNX file ({type(error).__name__})",
                         hint="pass a .onnx written by odexport convert or torch.onnx.export") from None
    weights = {init.name for init in graph.initializer}  # old exports list initializers as inputs
    inputs = [(i.name, tuple(d.dim_value or None for d in i.type.tensor_type.shape.dim))
              for i in graph.input if i.name not in weights]
    return inputs, tuple(o.name for o in graph.output)


def onnx_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's metadata (odexport writes its own under "odexport." keys)."""
    return {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}
