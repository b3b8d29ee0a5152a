"""One ODConv layer's inference-time parameters, folded: the description every lowering speaks.

Folding happens once, here, when a layer is described:
- the attention BatchNorm is folded into the attention fc (which gains a bias);
- the temperature is folded into the heads (logits are divided by it before sigmoid/softmax);
- the four head 1x1 convolutions are merged into one matrix, rows ordered channel, filter, spatial,
  kernel; a head whose attention is identically 1 (depthwise filter, 1x1 spatial, a single kernel, or
  every head but the kernel one in a kernel-attention-only variant such as CondConv or DyConv) is
  absent and has size 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def as_pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        first, second = value
        return int(first), int(second)
    return int(value), int(value)


KERNEL_ACTIVATIONS = ("softmax", "sigmoid")
# "computed": from the layer's own input by its attention branch; "given": by the caller, as a second input.
KERNEL_ATTENTIONS = ("computed", "given")


@dataclass(frozen=True, eq=False)
class ODConvSpec:
    """Folded parameters of one ODConv layer (eval semantics).

    weight:      [n, C_out, C_in / groups, k, k]   the stacked candidate kernels
    fc_weight:   [A, C_in]                         attention squeeze, BatchNorm folded in
    fc_bias:     [A]
    head_weight: [C_in + F + S + N, A]             merged heads, temperature folded in
    head_bias:   [C_in + F + S + N]
    out_scale, out_bias: [C_out] or None           an affine map applied after the layer; a folded
                                                   following BatchNorm leaves only out_bias
    head_sizes:  (C, F, S, N)                      the size of each attention, where
                 C = C_in or 0, F = C_out or 0, S = k*k or 0, N = n or 0 (0 when that attention is
                 identically 1); the rows of the merged head, except a given kernel attention's N
    kernel_bias: [n, C_out] or None                a bias per kernel, aggregated by the kernel attention
                                                   like the weight and added inside the convolution
                                                   (before the filter attention)
    kernel_activation: "softmax" | "sigmoid"       how kernel logits become kernel weights (ODConv and
                                                   DyConv: softmax over kernels; CondConv: a sigmoid each);
                                                   unused when the kernel attention is given
    kernel_attention: "computed" | "given"         given: the caller passes the kernel weights [B, n]
                                                   (routing, activation applied) and the layer has no
                                                   attention branch: fc_weight [0, C_in], fc_bias [0],
                                                   head_weight [0, 0], head_bias [0],
                                                   head_sizes (0, 0, 0, n)
    """

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    kernel_num: int
    weight: Tensor
    fc_weight: Tensor
    fc_bias: Tensor
    head_weight: Tensor
    head_bias: Tensor
    head_sizes: tuple[int, int, int, int]
    out_scale: Tensor | None = None
    out_bias: Tensor | None = None
    kernel_bias: Tensor | None = None
    kernel_activation: str = "softmax"
    kernel_attention: str = "computed"

    def __post_init__(self) -> None:
        n, c_out, c_in_g, k, k2 = self.weight.shape
        assert (n, c_out, c_in_g * self.groups, k, k2) == (
            self.kernel_num, self.out_channels, self.in_channels, self.kernel_size, self.kernel_size,
        ), f"weight shape {tuple(self.weight.shape)} does not match the layer's hyper-parameters"
        assert self.kernel_attention in KERNEL_ATTENTIONS, f"kernel_attention {self.kernel_attention!r}"
        if self.routed:
            assert self.head_sizes == (0, 0, 0, n), "a given kernel attention is the layer's only attention"
            assert self.head_weight.numel() == 0 and self.fc_weight.numel() == 0, "a routed layer has no attention branch"
        else:
            assert self.head_weight.shape[0] == sum(self.head_sizes), "head rows do not match head sizes"
        assert self.kernel_bias is None or tuple(self.kernel_bias.shape) == (n, c_out), "kernel_bias is not [n, C_out]"
        assert self.kernel_activation in KERNEL_ACTIVATIONS, f"kernel_activation {self.kernel_activation!r}"

    @property
    def routed(self) -> bool:
        """Whether the kernel attention is given by the caller (forward(x, routing)) rather than computed."""
        return self.kernel_attention == "given"

    @property
    def attention_width(self) -> int:
        return self.fc_weight.shape[0]

    @property
    def active_attentions(self) -> tuple[str, ...]:
        names = ("channel", "filter", "spatial", "kernel")
        return tuple(name for name, size in zip(names, self.head_sizes) if size)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        def one(size: int, axis: int) -> int:
            span = self.dilation[axis] * (self.kernel_size - 1) + 1
            return (size + 2 * self.padding[axis] - span) // self.stride[axis] + 1

        return one(height, 0), one(width, 1)
