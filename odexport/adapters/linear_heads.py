"""Fork variants with attention heads named by role (``fc_c``/``fc_f``/``fc_s``/``fc_w``,
``in_chans_fc``/``filter_fc``/``expert_fc`` ...), each an ``nn.Linear`` or a 1x1 ``nn.Conv2d``, and
optionally a bias per kernel and an attention BatchNorm.

Structure: a 5-D ``weight`` [n, C_out, C_in/g, k, k], a ``bias`` [n, C_out] (optional), and, on a child
module or on the layer itself, the heads named as in HEAD_NAMES (the channel head required: its width
is C_in), one squeeze (a linear map C_in -> A, A the heads' input width), and optionally a BatchNorm1d
or BatchNorm2d over A. Other modules beside them are ignored (confirmation checks that the forward
ignores them too). Hyper-parameters under the official or the YOLO names; a temperature as a plain
``temperature`` attribute of the heads' owner or the layer, else 1.

Forward, per sample: h = relu(bn?(squeeze(mean_hw(x)))); the four attentions as ODConv's (sigmoid;
softmax over kernels, logits divided by the temperature); y = filter * (conv(channel * x,
sum_n kernel[n] * spatial * W[n]) + sum_n kernel[n] * bias[n]).

Whether the BatchNorm is applied always, never, or (forks that cannot train it on one sample) only at
batch > 1 is found by confirmation; in the last case the user chooses (AdapterOptions.attention_batchnorm).
"""

from __future__ import annotations

from torch import nn

from ..errors import InputError
from .common import assemble_spec, hyperparameter, is_linear_map, kernel_stack, linear_map
from .registry import Adapter, AdapterOptions, Requirement, TemperatureSlot, matches_all

# Head names per role, as forks spell them.
HEAD_NAMES = {
    "channel": ("fc_c", "in_chans_fc", "channel_fc"),
    "filter": ("fc_f", "out_chans_fc", "filter_fc"),
    "spatial": ("fc_s", "spatial_fc"),
    "kernel": ("fc_w", "expert_fc", "kernel_fc"),
}
ROLES = ("channel", "filter", "spatial", "kernel")


def _widths(linear: nn.Module) -> tuple[int, int]:
    """(inputs, outputs) of an nn.Linear or a 1x1 nn.Conv2d."""
    rows, columns = linear.weight.flatten(1).shape
    return columns, rows


def _head(owner: nn.Module, role: str) -> nn.Module | None:
    return next((getattr(owner, name) for name in HEAD_NAMES[role] if is_linear_map(getattr(owner, name, None))), None)


def _owner(module: nn.Module) -> nn.Module | None:
    """The module holding the channel head: the layer itself or one of its children (any attribute name)."""
    for candidate in (module, *module.children()):
        if _head(candidate, "channel") is not None:
            return candidate
    return None


def _heads(module: nn.Module) -> list[nn.Module | None]:
    owner = _owner(module)
    return [_head(owner, role) for role in ROLES]


def _squeeze(module: nn.Module) -> nn.Module | None:
    """The linear map from the input channels (the channel head's width) to the heads' input width."""
    owner, heads = _owner(module), _heads(module)
    in_channels, width = _widths(heads[0])[1], _widths(heads[0])[0]
    return next((child for child in owner.children()
                 if is_linear_map(child) and all(child is not head for head in heads)
                 and _widths(child) == (in_channels, width)), None)


def _batchnorm(module: nn.Module) -> nn.Module | None:
    width = _widths(_heads(module)[0])[0]
    return next((child for child in _owner(module).children()
                 if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)) and child.num_features == width), None)


def _bias_fits(module: nn.Module) -> bool:
    bias, weight = getattr(module, "bias", None), kernel_stack(module)
    return bias is None or tuple(bias.shape) == tuple(weight.shape[:2])


REQUIREMENTS = (
    Requirement("a 5-D parameter 'weight' [n, C_out, C_in/g, k, k] (the kernel stack)",
                lambda m: kernel_stack(m) is not None),
    Requirement(f"a channel head ({'/'.join(HEAD_NAMES['channel'])}: an nn.Linear or 1x1 Conv2d) on the layer or "
                "a child", lambda m: _owner(m) is not None),
    Requirement("beside the heads, a squeeze: an nn.Linear or 1x1 Conv2d from C_in (the channel head's width) to "
                "the heads' input width", lambda m: _squeeze(m) is not None),
    Requirement("C_in a multiple of the kernel stack's C_in/g",
                lambda m: _widths(_squeeze(m))[0] % kernel_stack(m).shape[2] == 0),
    Requirement("'bias' absent or [n, C_out]", _bias_fits),
)


def _temperature(module: nn.Module) -> TemperatureSlot | None:
    for owner in (_owner(module), module):
        if isinstance(getattr(owner, "temperature", None), (int, float)):
            return TemperatureSlot(owner, "temperature")
    return None


def _describe(module: nn.Module, options: AdapterOptions):
    weight, heads, squeeze = kernel_stack(module), _heads(module), _squeeze(module)
    batchnorm = _batchnorm(module)
    if batchnorm is not None and options.attention_batchnorm is None:
        raise InputError("an attention BatchNorm that the variant skips at batch 1 needs an explicit choice",
                         hint="pass attention_batchnorm='apply' or 'skip' (--attention-batchnorm)")
    temperature = _temperature(module)
    bias = getattr(module, "bias", None)
    return assemble_spec(
        weight=weight.detach(),
        in_channels=_widths(squeeze)[0],
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
    "linear-heads", "fork ODConv with heads named by role (fc_c/fc_f/fc_s/fc_w, in_chans_fc/filter_fc/expert_fc), "
    "nn.Linear or 1x1 Conv2d, on the layer or a child; a bias per kernel",
    matches_all(REQUIREMENTS), _describe, temperature=_temperature, attention_batchnorm=_batchnorm,
    requirements=REQUIREMENTS,
)
