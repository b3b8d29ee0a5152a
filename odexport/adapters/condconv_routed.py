"""CondConv (Yang et al. 2019) as timm's ``CondConv2d`` lays it out in EfficientNet-CondConv: the layer
holds no routing; its caller (the block) computes one routing from the block input and passes it to
several layers.

Structure: ``weight`` [E, C_out * C_in/g * k * k] (expert kernels flattened), ``bias`` [E, C_out] or
None, ``num_experts``, ``in_channels``, ``out_channels``, ``kernel_size``, ``groups``, ``stride``,
``padding``, ``dilation``, no submodules, and ``forward(x, routing_weights)``. Forward: with r the
routing [B, E] (activation applied by the caller), y = conv(x, sum_e r[e] * W[e]) + sum_e r[e] * bias[e].

The spec is routed (kernel_attention "given"): the lowered layer is called as the original was, with
(x, routing), and the block's routing function stays ordinary traced ops.
"""

from __future__ import annotations

import inspect

from torch import nn

from .common import hyperparameter, routed_spec
from .registry import Adapter, AdapterOptions, Requirement, matches_all

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _kernel_size(module: nn.Module) -> int | None:
    """k of a square kernel (an int or a (k, k) tuple), else None (the spec holds square kernels)."""
    size = getattr(module, "kernel_size", None)
    if isinstance(size, (tuple, list)) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _takes_routing(module: nn.Module) -> bool:
    """Whether forward takes a second positional argument beside x (the routing weights)."""
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    return sum(1 for parameter in parameters if parameter.kind in _POSITIONAL) >= 2


def _shape_fits(module: nn.Module) -> bool:
    in_channels, groups, k = module.in_channels, module.groups, _kernel_size(module)
    if not all(isinstance(v, int) for v in (in_channels, module.out_channels, groups, k, module.num_experts)):
        return False
    return groups >= 1 and in_channels % groups == 0 and module.weight.shape == (
        module.num_experts, module.out_channels * in_channels // groups * k * k)


REQUIREMENTS = (
    Requirement("a 2-D parameter 'weight' [E, C_out * C_in/g * k * k] (flattened expert kernels)",
                lambda m: isinstance(m.weight, nn.Parameter) and m.weight.dim() == 2),
    Requirement("'num_experts', 'in_channels', 'out_channels', 'groups' and a square 'kernel_size' matching "
                "the weight's shape", _shape_fits),
    Requirement("'bias' absent or [E, C_out]", lambda m: getattr(m, "bias", None) is None
                or tuple(m.bias.shape) == (m.num_experts, m.out_channels)),
    # No submodules: a routing function inside would make it the self-routed layout (adapters.condconv).
    Requirement("no submodules", lambda m: next(m.children(), None) is None),
    Requirement("a forward taking (x, routing_weights)", _takes_routing),
)


def _describe(module: nn.Module, options: AdapterOptions):
    k = _kernel_size(module)
    shape = (module.num_experts, module.out_channels, module.in_channels // module.groups, k, k)
    bias = getattr(module, "bias", None)
    return routed_spec(
        weight=module.weight.detach().reshape(shape),
        in_channels=module.in_channels,
        stride=hyperparameter(module, "stride"),
        padding=hyperparameter(module, "padding"),
        dilation=hyperparameter(module, "dilation", default=1),
        kernel_bias=None if bias is None else bias.detach(),
    )


CONDCONV_ROUTED = Adapter(
    "condconv-routed", "CondConv2d (timm layout) routed by its block: forward(x, routing_weights), the "
    "routing computed outside the layer", matches_all(REQUIREMENTS), _describe, requirements=REQUIREMENTS,
)
