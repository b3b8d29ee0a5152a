"""CondConv (Yang et al. 2019) as timm's ``CondConv2d`` lays it out, with its routing function inside:
kernel attention only, a sigmoid per expert.

Structure: ``weight`` [E, C_out * C_in/g * k * k] (expert kernels flattened), ``bias`` [E, C_out] or
None, ``num_experts``, ``in_channels``, ``out_channels``, ``kernel_size``, ``groups``, ``stride``,
``padding``, ``dilation``, and ``routing_fn`` an nn.Linear (C_in -> E). Forward: r = sigmoid(
routing_fn(mean_hw(x))); y = conv(x, sum_e r[e] * W[e]) + sum_e r[e] * bias[e].
"""

from __future__ import annotations

from torch import nn

from .common import assemble_spec, hyperparameter, identity_squeeze, linear_map
from .registry import Adapter, AdapterOptions, Requirement, matches_all


REQUIREMENTS = (
    Requirement("a 2-D parameter 'weight' [E, C_out * C_in/g * k * k] (flattened expert kernels)",
                lambda m: isinstance(m.weight, nn.Parameter) and m.weight.dim() == 2),
    Requirement("'routing_fn', an nn.Linear", lambda m: isinstance(m.routing_fn, nn.Linear)),
    Requirement("'num_experts' == weight rows == routing_fn outputs",
                lambda m: isinstance(m.num_experts, int) and m.weight.shape[0] == m.num_experts
                == m.routing_fn.out_features),
    Requirement("'in_channels' == routing_fn inputs and 'out_channels'",
                lambda m: isinstance(m.in_channels, int) and isinstance(m.out_channels, int)
                and m.routing_fn.in_features == m.in_channels),
)


def _describe(module: nn.Module, options: AdapterOptions):
    k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
    experts = module.num_experts
    weight = module.weight.detach().reshape(experts, module.out_channels, module.in_channels // module.groups, k, k)
    fc_weight, fc_bias, head_map = identity_squeeze(module.in_channels)
    bias = getattr(module, "bias", None)
    return assemble_spec(
        weight=weight,
        in_channels=module.in_channels,
        stride=hyperparameter(module, "stride"),
        padding=hyperparameter(module, "padding"),
        dilation=hyperparameter(module, "dilation", default=1),
        squeeze=(fc_weight, fc_bias),
        squeeze_batchnorm=None,
        heads=(None, None, None, linear_map(module.routing_fn)),
        kernel_bias=None if bias is None else bias.detach(),
        kernel_activation="sigmoid",
        head_input_map=head_map,
    )


CONDCONV = Adapter(
    "condconv", "CondConv2d (timm layout, routing_fn inside): sigmoid routing over flattened expert kernels",
    matches_all(REQUIREMENTS), _describe, requirements=REQUIREMENTS,
)
