"""Shared pieces of adapters: head matrices, hyper-parameters under several names, and the assembly of
an ODConvSpec from a variant's parts (folds applied as describe_official applies them)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..odconv import ODConvSpec
from ..odconv.folding import drop_identity_attentions, fold_batchnorm, fold_temperature
from ..odconv.spec import as_pair

# Names variants give their hyper-parameters (the official one first).
HYPERPARAMETER_NAMES = {
    "stride": ("stride", "s"),
    "padding": ("padding", "p", "pad"),
    "dilation": ("dilation", "d"),
}


def hyperparameter(module: nn.Module, name: str, default: int | None = None) -> tuple[int, int]:
    """The module's ``name`` (stride, padding, dilation) under any of the names variants use, as a pair."""
    for candidate in HYPERPARAMETER_NAMES[name]:
        value = getattr(module, candidate, None)
        if isinstance(value, (int, tuple, list)) and not isinstance(value, bool):
            return as_pair(value)
    if default is None:
        raise AttributeError(f"{type(module).__name__} has no {name} attribute ({', '.join(HYPERPARAMETER_NAMES[name])})")
    return as_pair(default)


def has_hyperparameters(module: nn.Module, names=("stride", "padding")) -> bool:
    return all(any(isinstance(getattr(module, c, None), (int, tuple, list)) for c in HYPERPARAMETER_NAMES[n])
               for n in names)


def linear_map(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """An nn.Linear or a 1x1 nn.Conv2d as (weight [out, in], bias [out] or None)."""
    weight = module.weight.detach().flatten(1)
    return weight, None if module.bias is None else module.bias.detach()


def is_linear_map(module: object) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)
                                             and module.groups == 1)


def identity_squeeze(channels: int) -> tuple[Tensor, Tensor, Tensor]:
    """A squeeze that passes the pooled input through the spec's ReLU unchanged, for variants whose
    heads read the pooled input directly (CondConv): rows [I; -I] give relu(p) and relu(-p), and a
    head W becomes [W, -W], since W relu(p) - W relu(-p) = W p.

    -> fc_weight [2C, C], fc_bias [2C], the matrix [I, -I] that maps a head [R, C] to [R, 2C]
    """
    eye = torch.eye(channels)
    return torch.cat([eye, -eye]), torch.zeros(2 * channels), torch.cat([eye, -eye], dim=1)


def assemble_spec(
    *,
    weight: Tensor,
    in_channels: int,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    squeeze: tuple[Tensor, Tensor | None],
    squeeze_batchnorm: nn.Module | None,
    heads: tuple,
    temperature: float = 1.0,
    kernel_bias: Tensor | None = None,
    kernel_activation: str = "softmax",
    head_input_map: Tensor | None = None,
) -> ODConvSpec:
    """An ODConvSpec from a variant's parts.

    weight: [n, C_out, C_in/g, k, k]; squeeze: (weight [A, C_in], bias [A] or None), followed by
    squeeze_batchnorm (folded in) and a ReLU; heads: (channel, filter, spatial, kernel), each
    (weight [rows, A], bias [rows] or None) or None when absent; head_input_map: [A', A] applied to
    every head's weight (identity_squeeze).
    """
    n = weight.shape[0]
    fc_weight, fc_bias = squeeze
    if squeeze_batchnorm is not None:
        fc_weight, fc_bias = fold_batchnorm(fc_weight, fc_bias, squeeze_batchnorm)
    elif fc_bias is None:
        fc_bias = torch.zeros(fc_weight.shape[0])
    # A softmax over one kernel is identically 1; a sigmoid over one expert is not.
    heads = drop_identity_attentions(list(heads), n) if kernel_activation == "softmax" else list(heads)
    present = []
    for head in heads:
        if head is None:
            continue
        head_weight, head_bias = head
        if head_input_map is not None:
            head_weight = head_weight @ head_input_map
        present.append((head_weight, torch.zeros(head_weight.shape[0]) if head_bias is None else head_bias))
    head_weight = torch.cat([w for w, _ in present])
    head_bias = torch.cat([b for _, b in present])
    head_weight, head_bias = fold_temperature(head_weight, head_bias, float(temperature))
    return _layer_spec(
        weight, in_channels, stride, padding, dilation, kernel_bias,
        fc_weight=fc_weight.detach().clone(),
        fc_bias=fc_bias.detach().clone(),
        head_weight=head_weight.detach().clone(),
        head_bias=head_bias.detach().clone(),
        head_sizes=tuple(0 if head is None else head[0].shape[0] for head in heads),
        kernel_activation=kernel_activation,
    )


def _layer_spec(weight: Tensor, in_channels: int, stride, padding, dilation, kernel_bias: Tensor | None,
                **attention) -> ODConvSpec:
    """An ODConvSpec: the convolution's geometry read off ``weight`` [n, C_out, C_in/g, k, k], plus the
    attention fields given."""
    n, out_channels, in_per_group, k, _ = weight.shape
    return ODConvSpec(
        in_channels=in_channels, out_channels=out_channels, kernel_size=k, stride=stride, padding=padding,
        dilation=dilation, groups=in_channels // in_per_group, kernel_num=n, weight=weight.detach().clone(),
        kernel_bias=None if kernel_bias is None else kernel_bias.detach().clone(), **attention,
    )


def kernel_stack(module: nn.Module) -> nn.Parameter | None:
    """The module's own 5-D parameter [n, C_out, C_in/g, k, k] (the stack of candidate kernels), if any."""
    weight = getattr(module, "weight", None)
    return weight if isinstance(weight, nn.Parameter) and weight.dim() == 5 else None


def routed_spec(
    *,
    weight: Tensor,
    in_channels: int,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    kernel_bias: Tensor | None = None,
) -> ODConvSpec:
    """The ODConvSpec of a layer whose kernel attention its caller gives (routing computed outside it).

    weight: [n, C_out, C_in/g, k, k]; kernel_bias: [n, C_out] or None. No attention branch: empty
    squeeze and head tensors, head sizes (0, 0, 0, n).
    """
    return _layer_spec(
        weight, in_channels, stride, padding, dilation, kernel_bias,
        fc_weight=torch.zeros(0, in_channels), fc_bias=torch.zeros(0), head_weight=torch.zeros(0, 0),
        head_bias=torch.zeros(0), head_sizes=(0, 0, 0, weight.shape[0]), kernel_attention="given",
    )
