"""What a model holds: parameters, multiply-adds at an input size, and each ODConv layer."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from .errors import InputError
from .export import value_dims
from .manifest import MODEL_SUFFIXES, find_model, stamped
from .module_names import onnx_scope  # noqa: F401  (re-exported: where callers have found it)
from .rewrite import ODConvLayer, find_odconv_layers


@dataclass(frozen=True)
class LayerInfo:
    path: str
    adapter: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    kernel_num: int
    attentions: tuple[str, ...]

    @classmethod
    def from_layer(cls, layer: ODConvLayer) -> "LayerInfo":
        spec = layer.spec
        return cls(layer.path, layer.adapter, spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride,
                   spec.dilation, spec.groups, spec.kernel_num, spec.active_attentions)


@dataclass(frozen=True)
class ModelSummary:
    params: int
    macs: int
    input_size: tuple[int, int]
    layers: tuple[LayerInfo, ...]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CheckpointInspection:
    """What a checkpoint of a zoo architecture holds: what was inferred from its weights, and the model."""

    arch: str
    kernel_num: int
    reduction: float
    num_classes: int
    source_format: str
    sha256: str
    inferred: tuple[str, ...]
    summary: ModelSummary

    def to_dict(self) -> dict:
        found = asdict(self)
        return stamped({key: value for key, value in found.items() if key != "summary"} | found["summary"])


def count_macs(model: nn.Module, input_size: tuple[int, int], layers: list[ODConvLayer]) -> int:
    """Multiply-adds of one forward pass at batch 1 (convolutions, linear layers, ODConv kernel aggregation).

    An ODConv layer counts its convolution and the aggregation of its kernels; its attention branch is
    made of ordinary 1x1 convolutions, counted as such.
    """
    specs = {layer.path: layer.spec for layer in layers}
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    def odconv_hook(path: str):
        def hook(_module, _inputs, output: torch.Tensor) -> None:
            nonlocal total
            spec = specs[path]
            kernel_elements = spec.out_channels * spec.in_channels // spec.groups * spec.kernel_size**2
            total += output.numel() // spec.out_channels * kernel_elements
            if spec.kernel_num > 1 or spec.head_sizes[2]:
                total += spec.kernel_num * kernel_elements

        return hook

    handles = []
    for path, module in model.named_modules():
        if path in specs:
            handles.append(module.register_forward_hook(odconv_hook(path)))
        elif isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *input_size))
    finally:
        for handle in handles:
            handle.remove()
    return total


def summarize_model(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> ModelSummary:
    layers = find_odconv_layers(model)
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, input_size, layers)
    return ModelSummary(params, macs, input_size, tuple(LayerInfo.from_layer(layer) for layer in layers))


@dataclass(frozen=True)
class OnnxLayerNodes:
    """lowering: "generic" for a layer exported by the generic path, None for a lowered ODConv layer."""

    path: str
    nodes: int
    op_counts: dict[str, int]
    lowering: str | None = None


@dataclass(frozen=True)
class OnnxSummary:
    """What an exported ONNX file holds; ODConv layers are found from the paths odexport records."""

    lowering: str | None
    opset: int
    inputs: dict[str, list[int | str]]
    outputs: dict[str, list[int | str]]
    nodes: int
    op_counts: dict[str, int]
    layers: tuple[OnnxLayerNodes, ...]
    functions: tuple[str, ...]

    def to_dict(self) -> dict:
        return stamped(asdict(self))


def summarize_onnx(path) -> OnnxSummary:
    if not Path(path).is_file():
        raise InputError(f"{path}: no such ONNX file", hint="check the path to the exported model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise InputError(f"{path}: not a readable ONNX file ({type(error).__name__})",
                         hint="pass a .onnx file written by odexport or torch.onnx.export") from None
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    layer_paths = [(path, None) for path in json.loads(metadata.get("odexport.odconv_layers", "[]"))]
    layer_paths += [(path, "generic") for path in json.loads(metadata.get("odexport.generic_layers", "[]"))]
    nodes = list(model.graph.node)
    layers = []
    for layer_path, lowering in layer_paths:
        scope = onnx_scope(layer_path)
        ops = Counter(node.op_type for node in nodes if node.name.startswith(scope))
        layers.append(OnnxLayerNodes(layer_path, sum(ops.values()), dict(sorted(ops.items())), lowering))
    default_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxSummary(
        lowering=metadata.get("odexport.lowering"),
        opset=default_opset,
        inputs={i.name: list(value_dims(i)) for i in model.graph.input},
        outputs={o.name: list(value_dims(o)) for o in model.graph.output},
        nodes=len(nodes),
        op_counts=dict(Counter(node.op_type for node in nodes).most_common()),
        layers=tuple(layers),
        functions=tuple(f"{f.domain}::{f.name}" for f in model.functions),
    )


def summarize_artifact(path) -> dict:
    """An exported artifact: a convert output directory, a .onnx or an .xml. A .onnx's summary (as
    summarize_onnx) and, under "manifest", what the artifact's manifest records: read and checked as verify
    and profile read it, so a malformed one is bad input here too (None for a file without one)."""
    if not Path(path).exists():
        raise InputError(f"{path}: no such file or directory", hint="pass a convert output directory, a .onnx or an .xml")
    manifest, model_file = find_model(Path(path))
    if model_file.suffix not in MODEL_SUFFIXES:
        raise InputError(f"{model_file}: not a model file odexport can inspect", hint="pass a .onnx or an .xml")
    summary = summarize_onnx(model_file).to_dict() if model_file.suffix == ".onnx" else {}
    return {"model_file": str(model_file)} | summary | {"manifest": manifest.summary() if manifest else None}
