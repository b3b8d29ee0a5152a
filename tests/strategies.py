"""Hypothesis strategies and builders shared by the tests: randomised ODConv layers and their inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from odexport.models import ODConv2d


Pair = int | tuple[int, int]  # one value for both axes, or (height, width)


@dataclass(frozen=True)
class LayerCase:
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int
    kernel_num: int
    reduction: float
    temperature: float
    batch: int
    height: int
    width: int
    seed: int


# Stride, padding and dilation each different along height and width: an explicit example for the
# parity tests, so that every run checks what a draw checks only sometimes.
ASYMMETRIC = LayerCase(in_channels=4, out_channels=6, kernel_size=3, stride=(2, 1), padding=(1, 0), dilation=(2, 1),
                       groups=2, kernel_num=3, reduction=0.25, temperature=1.0, batch=2, height=13, width=10, seed=5)


def build_layer(case: LayerCase) -> tuple[ODConv2d, torch.Tensor]:
    """A randomised ODConv2d in eval mode whose attentions are far from uniform, and an input for it."""
    layer = ODConv2d(case.in_channels, case.out_channels, case.kernel_size, case.stride, case.padding,
                     case.dilation, case.groups, case.reduction, case.kernel_num)
    generator = torch.Generator().manual_seed(case.seed)
    with torch.no_grad():
        for name, tensor in layer.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
                continue
            fan_in = math.prod(tensor.shape[1:]) if tensor.dim() > 1 else 1
            # Heads get logits of a few units so that sigmoids and the softmax are far from flat.
            scale = 2.0 if tensor.dim() == 1 else 1.5 / math.sqrt(fan_in)
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)
    layer.update_temperature(case.temperature)
    x = torch.randn(case.batch, case.in_channels, case.height, case.width, generator=generator)
    return layer.eval(), x


def _pair(value: Pair) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


@st.composite
def layer_cases(draw, max_batch: int = 4) -> LayerCase:
    kernel_size = draw(st.sampled_from([1, 3, 5, 7]))
    grouping = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    if grouping == "depthwise":
        groups = in_channels = out_channels = draw(st.integers(3, 20))
    else:
        groups = 1 if grouping == "dense" else draw(st.sampled_from([2, 3]))
        in_channels = groups * draw(st.integers(1, 7))
        out_channels = groups * draw(st.integers(1, 7))
    # Stride, dilation and padding differ between the axes in some draws ((2, 1), (1, 0)): a lowering
    # that swaps or merges the axes only shows there.
    dilation = draw(st.sampled_from([1, 2, (2, 1), (1, 2)])) if kernel_size > 1 else 1
    dilation_h, dilation_w = _pair(dilation)
    padding = tuple(draw(st.integers(0, d * (kernel_size - 1) // 2)) for d in (dilation_h, dilation_w))
    span_h, span_w = (d * (kernel_size - 1) + 1 for d in (dilation_h, dilation_w))
    return LayerCase(
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel_size,
        stride=draw(st.sampled_from([1, 2, (2, 1), (1, 2)])),
        padding=padding[0] if padding[0] == padding[1] else padding,
        dilation=dilation,
        groups=groups,
        kernel_num=draw(st.integers(1, 8)),
        reduction=draw(st.sampled_from([0.0625, 0.25, 1.0])),
        temperature=draw(st.sampled_from([1.0, 0.5, 4.0])),
        batch=draw(st.integers(1, max_batch)),
        height=draw(st.integers(max(span_h - 2, 1) + 2, 17)),
        width=draw(st.integers(max(span_w - 2, 1) + 2, 17)),
        seed=draw(st.integers(0, 2**16)),
    )


class TinyODNet(torch.nn.Module):
    """A narrow, shallow ODConv classifier for tests of export mechanics: a dense 3x3 ODConv with
    several kernels, a depthwise ODConv, a pointwise single-kernel ODConv (the official pw1x case), each
    followed by BatchNorm, a residual add, and a linear head."""

    def __init__(self, num_classes: int = 5, kernel_num: int = 2) -> None:
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(3, 12, 3, 2, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU())
        self.conv1 = ODConv2d(12, 12, 3, 1, 1, reduction=0.25, kernel_num=kernel_num)
        self.bn1 = nn.BatchNorm2d(12)
        self.dw = ODConv2d(12, 12, 3, 2, 1, groups=12, reduction=0.25, kernel_num=kernel_num)
        self.bn2 = nn.BatchNorm2d(12)
        self.pw = ODConv2d(12, 20, 1, kernel_num=1)
        self.bn3 = nn.BatchNorm2d(20)
        self.head = nn.Linear(20, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(self.bn1(self.conv1(x)) + x)
        x = torch.relu(self.bn2(self.dw(x)))
        x = torch.relu(self.bn3(self.pw(x)))
        return self.head(x.mean(dim=(2, 3)))


def tiny_od_net(seed: int = 0, kernel_num: int = 2) -> TinyODNet:
    """A TinyODNet with seeded random weights and BatchNorm statistics, in eval mode."""
    from odexport.models import randomize_

    return randomize_(TinyODNet(kernel_num=kernel_num), seed=seed).eval()
