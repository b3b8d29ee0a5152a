"""The per-sample convolution of the generic path equals the batch-folded grouped convolution it replaces,
for every stride, padding, dilation, grouping and kernel shape the forks use."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from odexport.generic.conv import parse_conv2d, per_sample_conv2d

CASES = [
    dict(in_channels=4, out_channels=6, kernel=(3, 3), stride=1, padding=1, dilation=1, groups=1, bias=True),
    dict(in_channels=4, out_channels=6, kernel=(3, 3), stride=2, padding=1, dilation=1, groups=2, bias=False),
    dict(in_channels=6, out_channels=6, kernel=(3, 3), stride=1, padding=2, dilation=2, groups=6, bias=True),
    dict(in_channels=4, out_channels=8, kernel=(1, 1), stride=1, padding=0, dilation=1, groups=1, bias=False),
    dict(in_channels=4, out_channels=4, kernel=(3, 1), stride=(2, 1), padding=(1, 0), dilation=1, groups=2, bias=True),
    # a stride the size does not divide
    dict(in_channels=4, out_channels=6, kernel=(5, 5), stride=3, padding=0, dilation=1, groups=1, bias=True),
    # an even kernel: PyTorch pads one pixel more on the right and bottom
    dict(in_channels=4, out_channels=6, kernel=(4, 4), stride=1, padding="same", dilation=2, groups=1, bias=False),
    dict(in_channels=4, out_channels=6, kernel=(3, 3), stride=1, padding="valid", dilation=1, groups=2, bias=True),
]


def folded_call(case: dict, batch: int, size=(11, 9)) -> tuple:
    """The arguments of conv2d with ``batch`` samples and their kernels folded into the groups."""
    generator = torch.Generator().manual_seed(batch)
    groups = case["groups"]
    x = torch.randn(batch, case["in_channels"], *size, generator=generator)
    weight = torch.randn(batch, case["out_channels"], case["in_channels"] // groups, *case["kernel"], generator=generator)
    biases = torch.randn(batch, case["out_channels"], generator=generator) if case["bias"] else None
    return (x.reshape(1, -1, *size), weight.reshape(-1, *weight.shape[2:]),
            None if biases is None else biases.reshape(-1), case["stride"], case["padding"], case["dilation"],
            groups * batch)


@pytest.mark.parametrize("case, batch", list(itertools.product(CASES, (1, 3))))
def test_per_sample_convolution_equals_the_folded_one(case, batch):
    args = folded_call(case, batch)
    expected = F.conv2d(*args)
    got = per_sample_conv2d(parse_conv2d(args, {}), batch)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_keyword_arguments_are_read_like_positional_ones():
    args = folded_call(CASES[1], 2)
    call = parse_conv2d(args[:2], dict(zip(("bias", "stride", "padding", "dilation", "groups"), args[2:])))
    torch.testing.assert_close(per_sample_conv2d(call, 2), F.conv2d(*args), rtol=1e-5, atol=1e-5)
