"""Dynamic convolutions no adapter knows.

MixtureConv folds the batch into convolution groups, as the forks do: the generic path exports it.
SampleLoopConv convolves each sample in a Python loop over the batch, which a trace unrolls for the
example's batch: nothing can write that batch-generically without knowing its math, so it is refused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import per_sample_conv


class MixtureConv(nn.Module):
    def __init__(self, channels: int, experts: int = 3) -> None:
        super().__init__()
        self.experts = nn.Parameter(torch.randn(experts, channels, channels, 3, 3) * 0.1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = torch.softmax(self.gate(x), dim=1)
        weight = torch.einsum("be,eoikl->boikl", mix, self.experts)
        return per_sample_conv(x, weight, None, 1, 1, 1, 1)


class SampleLoopConv(MixtureConv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = torch.softmax(self.gate(x), dim=1)
        weight = torch.einsum("be,eoikl->boikl", mix, self.experts)
        return torch.cat([F.conv2d(x[i:i + 1], weight[i], padding=1) for i in range(x.shape[0])])


class NetWithUnknownDynamicConv(nn.Module):
    def __init__(self, layer: type[nn.Module] = MixtureConv) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = layer(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(torch.relu(self.stem(x))).mean(dim=(2, 3)))


class NetWithSampleLoopConv(NetWithUnknownDynamicConv):
    def __init__(self) -> None:
        super().__init__(SampleLoopConv)
