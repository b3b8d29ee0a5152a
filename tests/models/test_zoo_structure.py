"""Zoo models have the official parameter counts and state-dict layout.

Exact counts were taken from the official OSVAI/ODConv code (commit 0901cc1), whose state-dict keys and
shapes our models reproduce one for one; the rounded counts are the ones published in its README.
Models are built on the meta device: no memory, no init time.
"""

from __future__ import annotations

import pytest
import torch

from odexport.models import ODConv2d, create_model, get_arch, list_models

# (arch, kernel_num) -> number of parameters, num_classes=1000, reduction=1/16
OFFICIAL_PARAMS = {
    ("resnet18", 1): 11_689_512,
    ("resnet34", 1): 21_797_672,
    ("resnet50", 1): 25_557_032,
    ("resnet101", 1): 44_549_160,
    ("mobilenetv2_050", 1): 1_968_680,
    ("mobilenetv2_075", 1): 2_636_424,
    ("mobilenetv2_100", 1): 3_504_872,
    ("od_resnet18", 1): 11_943_944,
    ("od_resnet18", 2): 22_930_056,
    ("od_resnet18", 4): 44_901_640,
    ("od_resnet34", 1): 22_290_168,
    ("od_resnet34", 4): 85_551_288,
    ("od_resnet50", 1): 28_635_112,
    ("od_resnet50", 4): 90_670_888,
    ("od_resnet101", 1): 50_818_769,
    ("od_resnet101", 2): 90_441_623,
    ("od_resnet101", 4): 169_680_989,
    ("od_mobilenetv2_050", 1): 2_425_537,
    ("od_mobilenetv2_050", 4): 4_435_501,
    ("od_mobilenetv2_075", 1): 3_507_113,
    ("od_mobilenetv2_075", 4): 7_496_013,
    ("od_mobilenetv2_100", 1): 4_940_185,
    ("od_mobilenetv2_100", 4): 11_512_149,
}

# Published in the official README / paper tables, in millions.
PUBLISHED_PARAMS_M = {
    ("resnet18", 1): 11.69, ("od_resnet18", 1): 11.94, ("od_resnet18", 4): 44.90,
    ("resnet50", 1): 25.56, ("od_resnet50", 1): 28.64, ("od_resnet50", 4): 90.67,
    ("resnet101", 1): 44.55, ("od_resnet101", 1): 50.82, ("od_resnet101", 2): 90.44,
    ("mobilenetv2_050", 1): 1.97, ("od_mobilenetv2_050", 1): 2.43, ("od_mobilenetv2_050", 4): 4.44,
    ("mobilenetv2_075", 1): 2.64, ("od_mobilenetv2_075", 1): 3.51, ("od_mobilenetv2_075", 4): 7.50,
    ("mobilenetv2_100", 1): 3.50, ("od_mobilenetv2_100", 1): 4.94, ("od_mobilenetv2_100", 4): 11.51,
}


def build_meta(name: str, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch, kernel_num", sorted(OFFICIAL_PARAMS))
def test_parameter_count_equals_official(arch, kernel_num):
    n = count(build_meta(arch, kernel_num=kernel_num))
    assert n == OFFICIAL_PARAMS[arch, kernel_num]
    if (arch, kernel_num) in PUBLISHED_PARAMS_M:
        assert round(n / 1e6, 2) == PUBLISHED_PARAMS_M[arch, kernel_num]


def test_every_registered_arch_has_an_official_count():
    assert {arch for arch, _ in OFFICIAL_PARAMS} == set(list_models())


def test_od_resnet18_4x_keys_and_shapes():
    sd = build_meta("od_resnet18", kernel_num=4).state_dict()
    assert len(sd) == 346
    expected = {
        "conv1.weight": (64, 3, 7, 7),  # the stem stays a plain convolution
        "layer1.0.conv1.weight": (4, 64, 64, 3, 3),
        "layer1.0.conv1.attention.fc.weight": (16, 64, 1, 1),  # max(64 // 16, 16)
        "layer1.0.conv1.attention.bn.running_var": (16,),
        "layer1.0.conv1.attention.bn.num_batches_tracked": (),
        "layer1.0.conv1.attention.channel_fc.weight": (64, 16, 1, 1),
        "layer1.0.conv1.attention.channel_fc.bias": (64,),
        "layer1.0.conv1.attention.filter_fc.weight": (64, 16, 1, 1),
        "layer1.0.conv1.attention.spatial_fc.weight": (9, 16, 1, 1),
        "layer1.0.conv1.attention.kernel_fc.weight": (4, 16, 1, 1),
        "layer1.0.conv1.attention.kernel_fc.bias": (4,),
        "layer2.0.conv1.weight": (4, 128, 64, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),  # shortcuts stay plain too
        "layer4.1.conv2.attention.fc.weight": (32, 512, 1, 1),  # 512 // 16
        "layer4.1.conv2.attention.filter_fc.weight": (512, 32, 1, 1),
        "fc.weight": (1000, 512),
        "fc.bias": (1000,),
    }
    assert {k: tuple(sd[k].shape) for k in expected} == expected


def test_od_resnet50_1x_has_no_kernel_heads_and_no_spatial_heads_on_1x1():
    sd = build_meta("od_resnet50").state_dict()
    assert len(sd) == 832
    assert not any(".kernel_fc." in k for k in sd)
    assert tuple(sd["layer1.0.conv1.weight"].shape) == (1, 64, 64, 1, 1)
    assert "layer1.0.conv1.attention.spatial_fc.weight" not in sd
    assert "layer1.0.conv3.attention.spatial_fc.weight" not in sd
    assert tuple(sd["layer1.0.conv2.attention.spatial_fc.weight"].shape) == (9, 16, 1, 1)


def test_od_mobilenetv2_050_keys_and_shapes():
    sd = build_meta("od_mobilenetv2_050").state_dict()
    assert len(sd) == 824
    expected = {
        "features.0.0.weight": (16, 3, 3, 3),  # plain stem
        "features.1.conv.0.0.weight": (1, 16, 1, 3, 3),  # depthwise ODConv
        "features.1.conv.0.0.attention.spatial_fc.weight": (9, 16, 1, 1),
        "features.1.conv.1.weight": (1, 8, 16, 1, 1),  # pointwise-linear ODConv
        "features.1.conv.1.attention.filter_fc.weight": (8, 16, 1, 1),
        "features.1.conv.2.running_var": (8,),
        "features.2.conv.0.0.weight": (1, 48, 8, 1, 1),
        "features.18.0.weight": (1, 1280, 160, 1, 1),
        "classifier.1.weight": (1000, 1280),
    }
    assert {k: tuple(sd[k].shape) for k in expected} == expected
    assert "features.1.conv.0.0.attention.filter_fc.weight" not in sd  # depthwise: no filter attention
    assert "features.1.conv.1.attention.spatial_fc.weight" not in sd  # 1x1: no spatial attention


@pytest.mark.parametrize("arch", list_models(odconv=True))
@pytest.mark.parametrize("kernel_num", [1, 4])
def test_attention_heads_follow_the_layer_geometry(arch, kernel_num):
    layers = [m for m in build_meta(arch, kernel_num=kernel_num).modules() if isinstance(m, ODConv2d)]
    assert layers
    for m in layers:
        a = m.attention
        depthwise = m.in_planes == m.groups == m.out_planes
        k = m.kernel_size
        assert tuple(m.weight.shape) == (kernel_num, m.out_planes, m.in_planes // m.groups, k, k)
        assert a.fc.out_channels == max(int(m.in_planes * 0.0625), 16)
        assert hasattr(a, "filter_fc") != depthwise
        assert hasattr(a, "spatial_fc") == (m.kernel_size > 1)
        assert hasattr(a, "kernel_fc") == (kernel_num > 1)
        assert (a.kernel_size, a.kernel_num, a.temperature) == (m.kernel_size, kernel_num, 1.0)


@pytest.mark.parametrize("arch", list_models(odconv=True))
def test_od_and_static_twin_share_everything_but_the_odconv_layers(arch):
    od = build_meta(arch).state_dict()
    static = build_meta(get_arch(arch).static_twin).state_dict()
    od_layers = {k.rsplit(".weight", 1)[0] for k in od if k.endswith(".weight") and od[k].dim() == 5}
    # The twin's plain conv sits where each ODConv is; every other tensor is the same in both.
    assert {k for k in static if k.rsplit(".weight", 1)[0] not in od_layers} == {
        k for k in od if not any(k.startswith(layer + ".") for layer in od_layers)
    }
    for layer in od_layers:
        assert od[layer + ".weight"].shape[1:] == static[layer + ".weight"].shape
