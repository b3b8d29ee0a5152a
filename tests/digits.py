"""A tiny ODConv classifier trained for a few seconds on scikit-learn's handwritten digits: a subject with
real, confident predictions for precision tests (random weights make reduced precisions flip classes
whose logits tie, which says nothing about the artifact)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from odexport.inputs import preprocess

SIZE = (32, 32)


class DigitsODNet(torch.nn.Module):
    """TinyODNet's layers (a dense 3x3 ODConv with 4 kernels, a depthwise ODConv, a pointwise single-kernel
    ODConv, each followed by BatchNorm) with a classifier on the flattened 8x8 maps: where a stroke is
    tells digits apart, which a global average forgets. x: [B, in_channels, 32, 32] -> [B, 10] (1: grey digits)."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        from odexport.models import ODConv2d

        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 12, 3, 2, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU())
        self.conv1 = ODConv2d(12, 12, 3, 1, 1, reduction=0.25, kernel_num=4)
        self.bn1 = nn.BatchNorm2d(12)
        self.dw = ODConv2d(12, 12, 3, 2, 1, groups=12, reduction=0.25, kernel_num=4)
        self.bn2 = nn.BatchNorm2d(12)
        self.pw = ODConv2d(12, 16, 1, kernel_num=1)
        self.bn3 = nn.BatchNorm2d(16)
        self.head = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(self.bn1(self.conv1(x)) + x)
        x = torch.relu(self.bn2(self.dw(x)))
        x = torch.relu(self.bn3(self.pw(x)))
        return self.head(x.flatten(1))


@dataclass(frozen=True)
class TrainedDigits:
    """train, test: [N, 3, 32, 32] float32 preprocessed as convert's default (ImageNet mean/std)."""

    model: torch.nn.Module
    train: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray


def train_tiny_digits(steps: int = 200, seed: int = 0) -> TrainedDigits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    inputs = np.stack([preprocess(np.repeat(image[..., None], 3, axis=-1), SIZE) for image in images])
    order = np.random.default_rng(seed).permutation(len(inputs))
    train_idx, test_idx = order[:1200], order[1200:1500]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: a second thread mostly waits, and slows 10x on a busy machine
    try:
        model = _train(inputs[train_idx], digits.target[train_idx], steps, seed)
    finally:
        torch.set_num_threads(threads)
    return TrainedDigits(model, inputs[train_idx], inputs[test_idx], digits.target[test_idx])


def _train(inputs: np.ndarray, labels: np.ndarray, steps: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = DigitsODNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.from_numpy(inputs), torch.from_numpy(labels)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(x), (32,))
        loss = F.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
