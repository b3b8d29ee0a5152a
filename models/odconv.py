"""Omni-dimensional dynamic convolution (ODConv): the reference PyTorch layer.

Parameter names, shapes and eval-mode arithmetic follow the official implementation (OSVAI/ODConv,
``modules/odconv.py``), so official checkpoints load with ``strict=True`` and give the same outputs.
Other parts of odexport recognise an ODConv layer by the attribute names kept here (``in_planes``,
``out_planes``, ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``groups``, ``kernel_num``,
``attention``; on the attention: ``kernel_size``, ``kernel_num``, ``temperature``), so do not rename them.

For one sample, with n kernels W_i of shape [C_out, C_in/groups, k, k], the layer computes

    y = alpha_f * conv(x, sum_i alpha_w[i] * alpha_s * alpha_c * W_i)

where alpha_c (per input channel), alpha_f (per output channel), alpha_s (per kernel tap) are sigmoids
and alpha_w (per kernel) is a softmax, all of ``head(relu(bn(fc(mean_hw(x))))) / temperature``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ODAttentions(NamedTuple):
    """The four attentions of one ODConv layer for a batch; ``None`` where the layer has no such head.

    Shapes broadcast against the kernel stack ``weight.unsqueeze(0)``: [1, n, C_out, C_in/groups, k, k]
    (spatial, kernel) or against feature maps (channel, filter).

    - channel: [B, C_in, 1, 1], sigmoid; always present.
    - filter:  [B, C_out, 1, 1], sigmoid; ``None`` for depthwise layers (C_in == groups == C_out).
    - spatial: [B, 1, 1, 1, k, k], sigmoid; ``None`` for 1x1 kernels.
    - kernel:  [B, n, 1, 1, 1, 1], softmax over dim 1; ``None`` when kernel_num == 1.
    """

    channel: Tensor
    filter: Tensor | None
    spatial: Tensor | None
    kernel: Tensor | None


class Attention(nn.Module):
    """The shared squeeze (GAP -> 1x1 conv -> BN -> ReLU) and the four attention heads of an ODConv layer.

    A head the layer does not need is not created at all (not even as ``None``), exactly as in the
    official code, because official checkpoints carry no keys for it.
    """

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, groups: int = 1,
                 reduction: float = 0.0625, kernel_num: int = 4, min_channel: int = 16) -> None:
        super().__init__()
        attention_channel = max(int(in_planes * reduction), min_channel)
        self.kernel_size = kernel_size
        self.kernel_num = kernel_num
        self.temperature = 1.0

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(in_planes, attention_channel, 1, bias=False)
        self.bn = nn.BatchNorm2d(attention_channel)
        self.relu = nn.ReLU()

        self.channel_fc = nn.Conv2d(attention_channel, in_planes, 1, bias=True)
        # A depthwise kernel has one filter per input channel, so a filter attention would duplicate
        # the channel attention; the official model leaves it out.
        if not (in_planes == groups == out_planes):
            self.filter_fc = nn.Conv2d(attention_channel, out_planes, 1, bias=True)
        if kernel_size > 1:
            self.spatial_fc = nn.Conv2d(attention_channel, kernel_size * kernel_size, 1, bias=True)
        if kernel_num > 1:
            self.kernel_fc = nn.Conv2d(attention_channel, kernel_num, 1, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation (what training from scratch starts from)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def update_temperature(self, temperature: float) -> None:
        """Set the softening temperature T that divides every attention logit (official name)."""
        self.temperature = temperature

    def head(self, name: str) -> nn.Conv2d | None:
        """The head ``'channel_fc' | 'filter_fc' | 'spatial_fc' | 'kernel_fc'``, or ``None`` if absent."""
        return self._modules.get(name)

    def squeeze(self, x: Tensor) -> Tensor:
        """x: [B, C_in, H, W] -> hidden features [B, A, 1, 1] shared by all heads."""
        return self.relu(self.bn(self.fc(self.avgpool(x))))

    def attentions(self, x: Tensor) -> ODAttentions:
        """x: [B, C_in, H, W] -> the four attentions (shapes in :class:`ODAttentions`), ``None`` if absent."""
        h = self.squeeze(x)
        b, t = x.shape[0], self.temperature

        def logits(name: str, *shape: int) -> Tensor | None:
            fc = self.head(name)
            return None if fc is None else fc(h).view(b, *shape) / t

        channel = logits("channel_fc", -1, 1, 1)
        filter_ = logits("filter_fc", -1, 1, 1)
        spatial = logits("spatial_fc", 1, 1, 1, self.kernel_size, self.kernel_size)
        kernel = logits("kernel_fc", -1, 1, 1, 1, 1)
        return ODAttentions(
            channel=torch.sigmoid(channel),
            filter=None if filter_ is None else torch.sigmoid(filter_),
            spatial=None if spatial is None else torch.sigmoid(spatial),
            kernel=None if kernel is None else F.softmax(kernel, dim=1),
        )

    def forward(self, x: Tensor) -> tuple[Tensor | float, Tensor | float, Tensor | float, Tensor | float]:
        """x: [B, C_in, H, W] -> (channel, filter, spatial, kernel) as in the official code: 1.0 if absent."""
        return tuple(1.0 if a is None else a for a in self.attentions(x))  # type: ignore[return-value]


class ODConv2d(nn.Module):
    """ODConv drop-in for ``nn.Conv2d`` (no bias) with a stack of ``kernel_num`` kernels.

    weight: [kernel_num, out_planes, in_planes // groups, kernel_size, kernel_size].
    """

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, reduction: float = 0.0625, kernel_num: int = 4) -> None:
        super().__init__()
        if in_planes % groups or out_planes % groups:
            raise ValueError(f"groups={groups} must divide in_planes={in_planes} and out_planes={out_planes}")
        if kernel_num < 1:
            raise ValueError(f"kernel_num must be at least 1, got {kernel_num}")
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.kernel_num = kernel_num
        self.attention = Attention(in_planes, out_planes, kernel_size, groups=groups,
                                   reduction=reduction, kernel_num=kernel_num)
        self.weight = nn.Parameter(torch.empty(kernel_num, out_planes, in_planes // groups,
                                               kernel_size, kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation: each kernel Kaiming-normal with fan_out = C_out * k * k."""
        fan_out = self.out_planes * self.kernel_size * self.kernel_size
        nn.init.normal_(self.weight, 0.0, (2.0 / fan_out) ** 0.5)

    def update_temperature(self, temperature: float) -> None:
        """Set the attention temperature (official name)."""
        self.attention.update_temperature(temperature)

    def aggregate_weight(self, att: ODAttentions) -> Tensor:
        """The per-sample kernel sum_i alpha_w[i] * alpha_s * W_i: [B, C_out, C_in/groups, k, k].

        Channel and filter attentions are not folded in; ``forward`` applies them to the feature maps.
        """
        scale: Tensor | float = 1.0
        for a in (att.spatial, att.kernel):
            if a is not None:
                scale = scale * a
        # Same multiplication order as the official code, so results match it bit for bit.
        return torch.sum(scale * self.weight.unsqueeze(0), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, H_out, W_out]."""
        att = self.attention.attentions(x)
        # Scaling the input channels equals scaling every kernel along C_in, and costs less than doing
        # it per sample on the weights.
        x = x * att.channel
        if att.spatial is None and att.kernel is None:
            # Nothing dynamic left in the kernel: one ordinary convolution for the whole batch.
            out = F.conv2d(x, self.weight[0], None, self.stride, self.padding, self.dilation, self.groups)
        else:
            out = self._per_sample_conv(x, self.aggregate_weight(att))
        return out if att.filter is None else out * att.filter

    def _per_sample_conv(self, x: Tensor, weight: Tensor) -> Tensor:
        """x: [B, C_in, H, W], weight: [B, C_out, C_in/groups, k, k] -> [B, C_out, H_out, W_out].

        Folds the batch into the channel axis so that one grouped convolution applies each sample's kernel
        to that sample only.
        """
        b, _, h, w = x.shape
        out = F.conv2d(x.reshape(1, b * self.in_planes, h, w),
                       weight.reshape(b * self.out_planes, *weight.shape[2:]),
                       None, self.stride, self.padding, self.dilation, self.groups * b)
        return out.view(b, self.out_planes, out.shape[-2], out.shape[-1])

    def extra_repr(self) -> str:
        return (f"{self.in_planes}, {self.out_planes}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"kernel_num={self.kernel_num}")
