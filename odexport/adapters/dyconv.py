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
from .registry import Adapter, AdapterOptions, Requirement, TemperatureSlot, matches_all

REQUIREMENTS = (
    Requirement("a 5-D parameter 'weight' [K, C_out, C_in/g, k, k] (the kernel stack)",
                lambda m: kernel_stack(m) is not None),
    Requirement("a child 'attention'", lambda m: isinstance(m.attention, nn.Module)),
    Requirement("attention.fc1 and attention.fc2, each an nn.Linear or 1x1 Conv2d",
                lambda m: is_linear_map(m.attention.fc1) and is_linear_map(m.attention.fc2)),
    Requirement("attention.fc2 with K outputs", lambda m: m.attention.fc2.weight.shape[0] == kernel_stack(m).shape[0]),
    Requirement("attention.temperature, a number", lambda m: isinstance(m.attention.temperature, (int, float))),
)


def _batchnorm(module: nn.Module) -> nn.Module | None:
    batchnorm = getattr(module.attention, "bn", None)
    return batchnorm if isinstance(batchnorm, nn.BatchNorm2d) else None


def _temperature(module: nn.Module) -> TemperatureSlot:
    return TemperatureSlot(module.attention, "temperature")


def _describe(module: nn.Module, options: AdapterOptions):
    weight, attention = kernel_stack(module), module.attention
    batchnorm = _batchnorm(module) if options.attention_batchnorm != "skip" else None
    bias = getattr(module, "bias", None)
    return assemble_spec(
        weight=weight.detach(),
        in_channels=attention.fc1.weight.shape[1],
        stride=hyperparameter(module, "stride"),
        padding=hyperparameter(module, "padding"),
        dilation=hyperparameter(module, "dilation", default=1),
        squeeze=linear_map(attention.fc1),
        squeeze_batchnorm=batchnorm,
        heads=(None, None, None, linear_map(attention.fc2)),
        temperature=_temperature(module).value,
        kernel_bias=bias.detach() if isinstance(bias, nn.Parameter) else None,
    )


DYCONV = Adapter(
    "dyconv", "Dynamic_conv2d (DyConv): softmax attention over K kernels with a temperature",
    matches_all(REQUIREMENTS), _describe, temperature=_temperature, attention_batchnorm=_batchnorm,
    requirements=REQUIREMENTS,
)
