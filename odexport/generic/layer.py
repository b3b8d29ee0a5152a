"""A layer run as it is, with each convolution that folds the batch into groups written per sample.

Which of a layer's conv2d calls fold the batch is learnt by behaviour (``learn_folds``): the layer runs
at batch 1 and 2, and each call is compared with itself. A call whose kernel and groups do not change
is an ordinary convolution and is left to the exporter; a call whose input batch stays 1 while its
input channels, kernel rows and groups double folds the batch. Anything else cannot be written without
knowing the layer's math, and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .conv import CONV2D, Conv2dCall, parse_conv2d, per_sample_conv2d


@dataclass(frozen=True)
class ConvShapes:
    """What one conv2d call looked like: its input's and kernel's shapes and its group count."""

    input: tuple[int, ...]
    weight: tuple[int, ...]
    groups: int

    @classmethod
    def of(cls, call: Conv2dCall) -> "ConvShapes":
        return cls(tuple(call.input.shape), tuple(call.weight.shape), call.groups)

    def __str__(self) -> str:
        return f"input {list(self.input)}, kernel {list(self.weight)}, groups {self.groups}"


class UnhandledLayer(Exception):
    """Why a layer's convolutions cannot be written batch-generically."""


class _RecordConvolutions(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[ConvShapes] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in CONV2D:
            self.calls.append(ConvShapes.of(parse_conv2d(args, kwargs)))
        return func(*args, **kwargs)


class _UnfoldConvolutions(TorchFunctionMode):
    """Rewrites the calls ``folds`` marks (by call order) as per-sample convolutions of ``batch`` samples."""

    def __init__(self, folds: tuple[bool, ...], batch: int) -> None:
        super().__init__()
        self.folds, self.batch, self.calls = folds, batch, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in CONV2D:
            return func(*args, **kwargs)
        index, self.calls = self.calls, self.calls + 1
        if index < len(self.folds) and self.folds[index]:
            return per_sample_conv2d(parse_conv2d(args, kwargs), self.batch)
        return func(*args, **kwargs)


def batch_of(args: tuple) -> int:
    """The batch of a layer call: the first dimension of its first tensor argument."""
    first = next((arg for arg in args if isinstance(arg, Tensor)), None)
    if first is None or first.dim() == 0:
        raise UnhandledLayer("it is not called with a batched tensor")
    return int(first.shape[0])


def record_convolutions(layer: nn.Module, args: tuple, kwargs: dict) -> list[ConvShapes]:
    with torch.no_grad(), _RecordConvolutions() as recorder:
        layer(*args, **kwargs)
    return recorder.calls


def _folds_batch(one: ConvShapes, two: ConvShapes) -> bool:
    return (one.input[0] == two.input[0] == 1 and two.input[1] == 2 * one.input[1] and two.input[2:] == one.input[2:]
            and two.weight[0] == 2 * one.weight[0] and two.weight[1:] == one.weight[1:] and two.groups == 2 * one.groups)


def learn_folds(at_one: list[ConvShapes], at_two: list[ConvShapes]) -> tuple[bool, ...]:
    """For each conv2d call of a layer (its calls at batch 1 and at batch 2), whether it folds the batch."""
    if len(at_one) != len(at_two):
        raise UnhandledLayer(f"it makes {len(at_one)} convolution call(s) at batch 1 and {len(at_two)} at batch 2 "
                             "(a loop over the samples?)")
    folds = []
    for index, (one, two) in enumerate(zip(at_one, at_two)):
        if one.weight == two.weight and one.groups == two.groups:
            folds.append(False)
        elif _folds_batch(one, two):
            folds.append(True)
        else:
            raise UnhandledLayer(f"its convolution #{index + 1} ({one} at batch 1; {two} at batch 2) neither keeps "
                                 "its kernel nor folds the batch into its groups")
    return tuple(folds)


class GenericDynamicConv(nn.Module):
    """``layer`` with the conv2d calls ``folds`` marks written per sample (odexport.generic.conv); its
    other operations are traced as they are."""

    def __init__(self, layer: nn.Module, folds: tuple[bool, ...]) -> None:
        super().__init__()
        self.layer = layer
        self.folds = folds

    def forward(self, *args, **kwargs):
        with _UnfoldConvolutions(self.folds, batch_of(args)):
            return self.layer(*args, **kwargs)
