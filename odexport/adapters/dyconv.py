"""DyConv-style ``Dynamic_conv2d`` (Chen et al. 2020, "Dynamic Convolution"): kernel attention only, a
softmax over K kernels with a temperature.

Structure: a 5-D ``weight`` [K, C_out, C_in/g, k, k], ``bias`` [K, C_out] or None, and an ``attention``
holding two 1x1 convolutions ``fc1`` (C_in -> A, optionally followed by a BatchNorm2d ``bn``) and
``fc2`` (A -> K), and a plain ``temperature`` attribute. Forward: a = softmax(fc2(relu(bn?(fc1(
mean_hw(x))))) / temperature); y = conv(x, sum_k a[k] * W[k]) + sum_k a[k] * bias[k].
"""

from __future__ import annotations

from torch import nn

from .common import assemble_spec, hyperparameter, is_linear_map, kernel_stack, linear_map
from .registry import Adapter, AdapterOptions, TemperatureSlot


def _matches(module: nn.Module) -> bool:
    weight, attention = kernel_stack(module), getattr(module, "attention", None)
    if weight is None or not isinstance(attention, nn.Module):
        return False
    fc1, fc2 = getattr(attention, "fc1", None), getattr(attention, "fc2", None)
    return (is_linear_map(fc1) and is_linear_map(fc2) and fc2.weight.shape[0] == weight.shape[0]
            and isinstance(getattr(attention, "temperature", None), (int, float)))


def _temperature(module: nn.Module) -> TemperatureSlot:
    return TemperatureSlot(module.attention, "temperature")


def _describe(module: nn.Module, options: AdapterOptions):
    weight, attention = kernel_stack(module), module.attention
    batchnorm = getattr(attention, "bn", None)
    bias = getattr(module, "bias", None)
    return assemble_spec(
        weight=weight.detach(),
        in_channels=attention.fc1.weight.shape[1],
        stride=hyperparameter(module, "stride"),
        padding=hyperparameter(module, "padding"),
        dilation=hyperparameter(module, "dilation", default=1),
        squeeze=linear_map(attention.fc1),
        squeeze_batchnorm=batchnorm if isinstance(batchnorm, nn.BatchNorm2d) else None,
        heads=(None, None, None, linear_map(attention.fc2)),
        temperature=_temperature(module).value,
        kernel_bias=bias.detach() if isinstance(bias, nn.Parameter) else None,
    )


DYCONV = Adapter(
    "dyconv", "Dynamic_conv2d (DyConv): softmax attention over K kernels with a temperature",
    _matches, _describe, temperature=_temperature,
)
