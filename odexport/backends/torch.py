"""PyTorch eager, the reference every backend is checked against, under an explicit eval semantics.

A variant that skips its attention BatchNorm at batch 1 computes two different functions, depending on
the batch. The artifact follows the one the user chose, and so must the reference, whatever batch
parity runs at: "apply" runs every batch of one padded to two (eval BatchNorm treats samples apart, so
the first result is the sample's own), "skip" runs every sample alone. The user's own module stays the
reference; nothing of it is replaced.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..outputs import flatten_outputs
from .base import Runner


class TorchRunner:
    """PyTorch eager, the reference."""

    name = "pytorch"

    def __init__(self, module: nn.Module, input_names: tuple[str, ...], output_names: tuple[str, ...]) -> None:
        self.module = module.eval()
        self.input_names = input_names
        self.output_names = output_names

    @torch.no_grad()
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.module(*(torch.from_numpy(feed[name]) for name in self.input_names))
        return {name: out.numpy() for name, (_, out) in zip(self.output_names, flatten_outputs(outputs))}


class ChosenBatchSemantics:
    """A reference runner whose results follow ``attention_batchnorm`` at every batch size."""

    def __init__(self, runner: Runner, attention_batchnorm: str) -> None:
        self.runner = runner
        self.attention_batchnorm = attention_batchnorm
        self.name, self.input_names, self.output_names = runner.name, runner.input_names, runner.output_names

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = len(next(iter(feed.values())))
        if self.attention_batchnorm == "apply" and batch == 1:
            padded = self.runner.infer({name: np.concatenate([value, value]) for name, value in feed.items()})
            return {name: value[:1] for name, value in padded.items()}
        if self.attention_batchnorm == "skip" and batch > 1:
            singles = [self.runner.infer({name: value[i:i + 1] for name, value in feed.items()}) for i in range(batch)]
            return {name: np.concatenate([single[name] for single in singles]) for name in singles[0]}
        return self.runner.infer(feed)


def reference_runner(runner: Runner, attention_batchnorm: str | None) -> Runner:
    """``runner`` itself when no layer has a batch-dependent BatchNorm (attention_batchnorm None)."""
    return runner if attention_batchnorm is None else ChosenBatchSemantics(runner, attention_batchnorm)
