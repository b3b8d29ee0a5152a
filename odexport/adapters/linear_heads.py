"""Fork variants with ``nn.Linear`` attention heads, a bias per kernel, and an attention BatchNorm that
the fork skips at batch 1 (BatchNorm1d cannot train on one sample).

Structure: a 5-D ``weight`` [n, C_out, C_in/g, k, k], a ``bias`` [n, C_out] (optional), and a child
attention module holding one ``nn.Linear`` squeeze (C_in -> A), an optional ``BatchNorm1d``, and
``nn.Linear`` heads (A -> rows) named by role as in HEAD_NAMES. Hyper-parameters under the official or
the YOLO names; a temperature as a plain ``temperature`` attribute of the attention or the layer.

Forward, per sample: h = relu(bn?(squeeze(mean_hw(x)))); the four attentions as ODConv's (sigmoid;
softmax over kernels, logits divided by the temperature); y = filter * (conv(channel * x,
sum_n kernel[n] * spatial * W[n]) + sum_n kernel[n] * bias[n]).

Which eval behaviour of the BatchNorm to export is the user's choice (AdapterOptions.attention_batchnorm).
"""

from __future__ import annotations

from torch import nn

from ..errors import InputError
from .common import assemble_spec, hyperparameter, kernel_stack, linear_map
from .registry import Adapter, AdapterOptions, TemperatureSlot

# Head names per role, as forks spell them.
HEAD_NAMES = {
    "channel": ("fc_c", "in_chans_fc", "channel_fc"),
    "filter": ("fc_f", "out_chans_fc", "filter_fc"),
    "spatial": ("fc_s", "spatial_fc"),
    "kernel": ("fc_w", "expert_fc", "kernel_fc"),
}
ROLES = ("channel", "filter", "spatial", "kernel")


def _attention(module: nn.Module) -> nn.Module | None:
    """The child holding the Linear heads (any attribute name)."""
    for child in module.children():
        if any(isinstance(getattr(child, name, None), nn.Linear) for names in HEAD_NAMES.values() for name in names):
            return child
    return None


def _head(attention: nn.Module, role: str) -> nn.Linear | None:
    return next((getattr(attention, name) for name in HEAD_NAMES[role]
                 if isinstance(getattr(attention, name, None), nn.Linear)), None)


def _squeeze(attention: nn.Module, heads: list[nn.Linear]) -> nn.Linear | None:
    """The Linear whose outputs feed the heads (its out_features is the heads' in_features)."""
    width = heads[0].in_features
    return next((child for child in attention.children()
                 if isinstance(child, nn.Linear) and child not in heads and child.out_features == width), None)


def _parts(module: nn.Module):
    weight = kernel_stack(module)
    attention = _attention(module) if weight is not None else None
    if attention is None:
        return None
    heads = [_head(attention, role) for role in ROLES]
    present = [head for head in heads if head is not None]
    squeeze = _squeeze(attention, present) if present else None
    if squeeze is None:
        return None
    return weight, attention, heads, squeeze


def _matches(module: nn.Module) -> bool:
    parts = _parts(module)
    if parts is None:
        return False
    weight, _, heads, squeeze = parts
    bias = getattr(module, "bias", None)
    return heads[0] is not None and squeeze.in_features % weight.shape[2] == 0 and (
        bias is None or tuple(bias.shape) == tuple(weight.shape[:2]))


def _batchnorm(module: nn.Module) -> nn.Module | None:
    parts = _parts(module)
    return None if parts is None else next(
        (child for child in parts[1].children() if isinstance(child, nn.BatchNorm1d)), None)


def _temperature(module: nn.Module) -> TemperatureSlot | None:
    for owner in (_attention(module), module):
        if isinstance(getattr(owner, "temperature", None), (int, float)):
            return TemperatureSlot(owner, "temperature")
    return None


def _describe(module: nn.Module, options: AdapterOptions):
    weight, attention, heads, squeeze = _parts(module)
    batchnorm = _batchnorm(module)
    if batchnorm is not None and options.attention_batchnorm is None:
        raise InputError("an attention BatchNorm that the variant skips at batch 1 needs an explicit choice",
                         hint="pass attention_batchnorm='apply' or 'skip' (--attention-batchnorm)")
    temperature = _temperature(module)
    bias = getattr(module, "bias", None)
    return assemble_spec(
        weight=weight.detach(),
        in_channels=squeeze.in_features,
        stride=hyperparameter(module, "stride"),
        padding=hyperparameter(module, "padding"),
        dilation=hyperparameter(module, "dilation", default=1),
        squeeze=linear_map(squeeze),
        squeeze_batchnorm=batchnorm if options.attention_batchnorm == "apply" else None,
        heads=tuple(None if head is None else linear_map(head) for head in heads),
        temperature=1.0 if temperature is None else temperature.value,
        kernel_bias=None if bias is None else bias.detach(),
    )


LINEAR_HEADS = Adapter(
    "linear-heads", "fork ODConv with nn.Linear heads (fc_c/fc_f/fc_s/fc_w, in_chans_fc/expert_fc), a bias per kernel",
    _matches, _describe, temperature=_temperature, batch_dependent_batchnorm=_batchnorm,
)
