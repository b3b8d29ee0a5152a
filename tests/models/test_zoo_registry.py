"""The zoo registry: names, metadata, create_model's options and errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from odexport.errors import InputError, UnknownArchitectureError
from odexport.models import (
    ArchInfo,
    ODConv2d,
    create_model,
    get_arch,
    list_models,
    od_mobilenetv2_050,
    randomize_,
    resnet18,
)

STATIC = ["mobilenetv2_050", "mobilenetv2_075", "mobilenetv2_100", "resnet18", "resnet34", "resnet50", "resnet101"]
OD = ["od_" + name for name in STATIC]


def build_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def test_lists_every_architecture_and_filters_by_kind():
    assert sorted(list_models()) == sorted(STATIC + OD)
    assert sorted(list_models(odconv=True)) == sorted(OD)
    assert sorted(list_models(odconv=False)) == sorted(STATIC)
    assert list_models().index("od_resnet18") < list_models().index("od_resnet101")  # by size, not by text


@pytest.mark.parametrize("name", list_models())
def test_arch_info_describes_the_builder(name):
    info = get_arch(name)
    assert isinstance(info, ArchInfo) and info.name == name and info.builder.__name__ == name
    assert info.odconv == name.startswith("od_")
    assert info.family in name and info.depth_or_width in name
    twin = get_arch(info.static_twin)
    assert not twin.odconv
    assert (twin.family, twin.depth_or_width) == (info.family, info.depth_or_width)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"  # type: ignore[misc]


def test_unknown_name_raises_with_the_known_names_as_hint():
    with pytest.raises(UnknownArchitectureError) as caught:
        get_arch("od_resnet19")
    err = caught.value
    assert isinstance(err, InputError)
    assert "od_resnet19" in err.message
    assert "od_resnet18" in err.hint and all(name in err.hint for name in list_models())
    with pytest.raises(UnknownArchitectureError):
        create_model("vgg16")


def test_static_arch_rejects_several_kernels_and_names_its_od_twin():
    with pytest.raises(ValueError, match=r"static.*kernel_num.*od_resnet50"):
        create_model("resnet50", kernel_num=4)


def test_static_arch_ignores_reduction():
    model = build_meta("mobilenetv2_050", reduction=0.25)
    assert not any(isinstance(m, ODConv2d) for m in model.modules())


def test_options_reach_the_layers():
    model = build_meta("od_resnet18", num_classes=10, kernel_num=2, reduction=0.25, dropout=0.3)
    convs = [m for m in model.modules() if isinstance(m, ODConv2d)]
    assert all(m.kernel_num == 2 for m in convs)
    assert convs[-1].attention.fc.out_channels == 512 // 4
    assert model.fc.out_features == 10
    assert model.dropout.p == 0.3


@pytest.mark.parametrize("name, dropout", [
    ("od_resnet18", 0.1), ("od_mobilenetv2_100", 0.2), ("mobilenetv2_100", 0.2), ("resnet18", 0.0),
])
def test_dropout_defaults_to_the_official_value(name, dropout):
    drops = [m.p for m in build_meta(name).modules() if isinstance(m, nn.Dropout)]
    assert drops == [dropout]


def test_builders_are_the_public_functions():
    assert get_arch("resnet18").builder is resnet18
    assert get_arch("od_mobilenetv2_050").builder is od_mobilenetv2_050


def test_state_dict_round_trips_strictly():
    source = randomize_(create_model("od_mobilenetv2_050", kernel_num=2), seed=0)
    target = create_model("od_mobilenetv2_050", kernel_num=2)
    target.load_state_dict(source.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(x), source.eval()(x), rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_arch_classifies_a_small_batch(name):
    model = create_model(name, num_classes=7, kernel_num=2 if get_arch(name).odconv else 1).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
