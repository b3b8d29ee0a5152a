"""Input channels: read from the first convolution (plain or dynamic), checked when given, and the parity
inputs each count gets (photographs in RGB for 3, in grey for 1, random only otherwise)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import odexport
from odexport.errors import InputError
from odexport.input_channels import first_convolution, resolve_channels
from odexport.inputs import IMAGENET, for_channels, parity_inputs, photographs
from variants import randomize
from variants.condconv import CondConv2d


class DynamicFirst(nn.Module):
    """A dynamic convolution on a 4-channel input, then a plain one: x: [B, 4, H, W] -> [B, 5, H, W]."""

    def __init__(self) -> None:
        super().__init__()
        self.dynamic = CondConv2d(4, 6, 3, 1, 1, num_experts=2)
        self.plain = nn.Conv2d(6, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.plain(self.dynamic(x))


def test_first_convolution_is_read_from_a_dynamic_layer_too():
    model = DynamicFirst()
    assert first_convolution(model) == ("dynamic", 4)
    assert resolve_channels(model, None) == 4
    assert resolve_channels(nn.Sequential(nn.ReLU()), None) == 3  # nothing to read: RGB
    with pytest.raises(InputError, match=r"first convolution \(dynamic, CondConv2d\) takes 4"):
        resolve_channels(model, 3)


def test_four_channels_convert_with_random_inputs_only(tmp_path):
    model = randomize(DynamicFirst(), seed=0)
    result = odexport.convert(model, torch.randn(1, 4, 12, 14), channels=4, target="onnx", output=tmp_path / "out")
    assert result.parity.passed, result.parity.summary()
    assert result.manifest["preprocessing"] is None and result.manifest["inputs"][0]["shape"][1] == 4
    with pytest.raises(InputError, match="contradicts the example input's 4 channels"):
        odexport.convert(model, torch.randn(1, 4, 12, 14), channels=1, target="onnx", output=tmp_path / "other")


def test_grey_photographs_are_the_luma_of_the_rgb_ones():
    grey = for_channels(IMAGENET, 1)
    assert grey.color == "L" and len(grey.mean) == len(grey.std) == 1 and for_channels(IMAGENET, 4) is None
    rgb, luma = photographs((16, 16), IMAGENET), photographs((16, 16), grey)
    assert luma.shape == (len(rgb), 1, 16, 16)
    # Undo each normalisation: the grey pixels are BT.601's weighted sum of the RGB pixels.
    pixels = rgb * np.array(IMAGENET.std).reshape(1, 3, 1, 1) + np.array(IMAGENET.mean).reshape(1, 3, 1, 1)
    expected = (pixels * np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(luma * grey.std[0] + grey.mean[0], expected, atol=1e-5)
    assert parity_inputs((16, 16), channels=1, preprocessing=grey).shape[1] == 1
