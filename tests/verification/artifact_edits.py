"""Deliberate damage to exported artifacts, the way a bad build or a bad copy would do it: one weight
tensor of one layer, in the ONNX file or inside an OpenVINO .bin."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from odexport.inspection import onnx_scope


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {init.name: init for init in model.graph.initializer}


def layer_initializers(model: onnx.ModelProto, layer: str) -> set[str]:
    """The initializers read by the nodes of ``layer``, found by the exporter's node scopes."""
    scope = onnx_scope(layer)
    initializers = _initializers(model)
    return {name for node in model.graph.node if node.name.startswith(scope) for name in node.input
            if name in initializers}


def edit_initializer(model_file: Path, name: str, edit) -> None:
    """Replace initializer ``name`` with ``edit(array)``."""
    model = onnx.load(str(model_file))
    init = _initializers(model)[name]
    init.CopyFrom(numpy_helper.from_array(edit(numpy_helper.to_array(init).copy()), name))
    onnx.save(model, str(model_file))


def scale_channel(array: np.ndarray, channel: int = 0, factor: float = 3.0) -> np.ndarray:
    array[channel] *= factor
    return array


def swap_rows(a: int, b: int):
    def edit(array: np.ndarray) -> np.ndarray:
        array[[a, b]] = array[[b, a]]
        return array

    return edit


def scale_openvino_constant(xml_file: Path, layer: str, channel: int = 0, factor: float = 3.0) -> str:
    """Scale one output channel of ``layer``'s largest f32 constant inside the .bin, found from the .xml:
    the Const op named after the layer gives offset, size and shape of its bytes."""
    constants = []
    for op in ET.parse(xml_file).getroot().iter("layer"):
        data = op.find("data")
        if op.get("type") == "Const" and op.get("name", "").startswith(f"{layer}.") and data.get("element_type") == "f32":
            shape = [int(d) for d in data.get("shape").split(",")]
            constants.append((int(data.get("size")), int(data.get("offset")), shape, op.get("name")))
    assert constants, f"no f32 constant named after {layer} in {xml_file}"
    size, offset, shape, name = max(constants)
    row = size // shape[0]  # bytes per output channel
    start = offset + channel * row
    weights = bytearray(xml_file.with_suffix(".bin").read_bytes())
    values = np.frombuffer(bytes(weights[start:start + row]), dtype=np.float32) * np.float32(factor)
    weights[start:start + row] = values.tobytes()
    xml_file.with_suffix(".bin").write_bytes(bytes(weights))
    return name
