"""A fork of ODConv with nn.Linear attention heads, a bias per kernel, and an attention BatchNorm1d that
is skipped at batch 1 (it cannot train on one sample, so the fork branches on the batch size).

Two spellings of the heads: ``fc_c``/``fc_f``/``fc_s``/``fc_w`` and ``in_chans_fc``/``out_chans_fc``/
``spatial_fc``/``expert_fc``. The temperature is a plain attribute of the attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import per_sample_conv

SPELLINGS = {
    "short": ("fc_c", "fc_f", "fc_s", "fc_w"),
    "long": ("in_chans_fc", "out_chans_fc", "spatial_fc", "expert_fc"),
}


class LinearAttention(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, kernel_num: int, hidden: int,
                 spelling: str = "short") -> None:
        super().__init__()
        self.names = SPELLINGS[spelling]
        self.squeeze = nn.Linear(in_planes, hidden, bias=False)
        self.norm = nn.BatchNorm1d(hidden)
        self.temperature = 1.0
        sizes = (in_planes, out_planes, kernel_size * kernel_size, kernel_num)
        for name, size in zip(self.names, sizes):
            setattr(self, name, nn.Linear(hidden, size))
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor):
        h = self.squeeze(x.mean(dim=(2, 3)))
        if h.shape[0] > 1:  # BatchNorm1d cannot train on a single sample
            h = self.norm(h)
        h = F.relu(h)
        channel, filter_, spatial, kernel = (getattr(self, name)(h) / self.temperature for name in self.names)
        return torch.sigmoid(channel), torch.sigmoid(filter_), torch.sigmoid(spatial), F.softmax(kernel, dim=1)


class LinearHeadODConv(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 groups: int = 1, kernel_num: int = 3, hidden: int = 8, spelling: str = "short") -> None:
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = stride, padding, 1, groups
        self.kernel_num = kernel_num
        self.att = LinearAttention(in_planes, out_planes, kernel_size, kernel_num, hidden, spelling)
        self.weight = nn.Parameter(torch.randn(kernel_num, out_planes, in_planes // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(kernel_num, out_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel, filter_, spatial, kernel = self.att(x)
        b, k = x.shape[0], self.att.kernel_size
        weight = torch.einsum("bn,noikl->boikl", kernel, self.weight) * spatial.reshape(b, 1, 1, k, k)
        bias = kernel @ self.bias
        y = per_sample_conv(x * channel[:, :, None, None], weight, bias, self.stride, self.padding, self.dilation,
                            self.groups)
        return y * filter_[:, :, None, None]
