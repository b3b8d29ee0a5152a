"""What a model holds: parameters, multiply-adds at an input size, and each ODConv layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

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
