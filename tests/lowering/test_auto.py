"""`auto` picks a lowering per layer by its documented rule, records the choice, and keeps parity."""

from __future__ import annotations

import pytest

from odexport.conversion import convert_model
from odexport.errors import InputError
from odexport.lowering.auto import SMALL_KERNEL_WEIGHTS, choose_for_layer
from odexport.rewrite import find_odconv_layers
from strategies import tiny_od_net


def test_rule():
    model = tiny_od_net(kernel_num=1)
    specs = {layer.path: layer.spec for layer in find_odconv_layers(model)}
    assert all(choose_for_layer(spec, dynamic_batch=True) == "decomposed" for spec in specs.values())
    # All three kernels are small (at most 12 x 12 x 3 x 3 weights): run-time kernels are cheap there.
    assert all(spec.weight[0].numel() <= SMALL_KERNEL_WEIGHTS for spec in specs.values())
    assert {choose_for_layer(spec, dynamic_batch=False) for spec in specs.values()} == {"dynamic-weight"}


def test_large_single_kernel_layers_keep_constant_weights():
    from odexport.models import ODConv2d
    from odexport.odconv import describe_official

    deep = describe_official(ODConv2d(256, 256, 3, padding=1, kernel_num=1))
    deep4 = describe_official(ODConv2d(256, 256, 3, padding=1, kernel_num=4))
    assert choose_for_layer(deep, dynamic_batch=False) == "decomposed"
    assert choose_for_layer(deep4, dynamic_batch=False) == "dynamic-weight"


@pytest.mark.parametrize(("batch", "expected"), [(None, "decomposed"), (2, "dynamic-weight")])
def test_auto_records_each_layers_choice_and_keeps_parity(tmp_path, batch, expected):
    result = convert_model(tiny_od_net(), target="onnx", output=tmp_path / "out", imgsz=32, lowering="auto",
                           batch=batch)
    assert result.parity.passed, result.parity.summary()
    assert result.manifest["lowering"] == "auto"
    assert {layer["lowering"] for layer in result.manifest["odconv_layers"]} == {expected}
    assert result.manifest["dynamic"]["batch"] is (batch is None)


def test_unknown_lowering_names_the_choices(tmp_path):
    with pytest.raises(InputError, match="unknown lowering") as caught:
        convert_model(tiny_od_net(), target="onnx", output=tmp_path / "out", imgsz=32, lowering="fast")
    assert "auto" in caught.value.hint and "decomposed" in caught.value.hint
