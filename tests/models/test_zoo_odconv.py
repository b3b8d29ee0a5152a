"""ODConv2d against the paper's formula, computed here independently, one sample at a time in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from odexport.models import Attention, ODConv2d, create_model, randomize_

IN, OUT = 8, 12


def make_layer(kernel_size: int, stride: int, dilation: int, groups: str, kernel_num: int) -> ODConv2d:
    in_planes, out_planes, g = (IN, IN, IN) if groups == "dw" else (IN, OUT, int(groups))
    padding = dilation * (kernel_size - 1) // 2
    return ODConv2d(in_planes, out_planes, kernel_size, stride=stride, padding=padding, dilation=dilation,
                    groups=g, kernel_num=kernel_num)


def reference_odconv(layer: ODConv2d, x: Tensor) -> Tensor:
    """x: [B, C_in, H, W] -> [B, C_out, H', W'] from the paper's equations, per sample, in float64.

    Reads only the state dict, the layer's hyper-parameters and the attention temperature.
    """
    p = {k: v.double() for k, v in layer.state_dict().items()}
    t = layer.attention.temperature
    eps = layer.attention.bn.eps
    k, n, g = layer.kernel_size, layer.kernel_num, layer.groups
    cin_g, cout_g = layer.in_planes // g, layer.out_planes // g

    def head(name: str, h: Tensor) -> Tensor | None:
        if f"attention.{name}.weight" not in p:
            return None
        return (p[f"attention.{name}.weight"].flatten(1) @ h + p[f"attention.{name}.bias"]) / t

    outs = []
    for xb in x.double():
        pooled = xb.mean(dim=(1, 2))                                                  # [C_in]
        z = p["attention.fc.weight"].flatten(1) @ pooled                              # [A]
        z = (z - p["attention.bn.running_mean"]) / torch.sqrt(p["attention.bn.running_var"] + eps)
        h = torch.relu(z * p["attention.bn.weight"] + p["attention.bn.bias"])
        alpha_c = torch.sigmoid(head("channel_fc", h))                                # [C_in]
        f, s, w = head("filter_fc", h), head("spatial_fc", h), head("kernel_fc", h)
        alpha_f = torch.ones(layer.out_planes, dtype=torch.float64) if f is None else torch.sigmoid(f)
        alpha_s = torch.ones(k, k, dtype=torch.float64) if s is None else torch.sigmoid(s).view(k, k)
        alpha_w = torch.ones(1, dtype=torch.float64) if w is None else torch.softmax(w, dim=0)
        assert alpha_w.numel() == n
        # Channel attention scales each kernel along its input channels; output o belongs to group o // cout_g.
        alpha_c_per_filter = alpha_c.view(g, 1, cin_g).expand(g, cout_g, cin_g).reshape(layer.out_planes, cin_g)
        kernel = (alpha_w.view(n, 1, 1, 1, 1) * p["weight"]).sum(dim=0)                # [C_out, C_in/g, k, k]
        kernel = kernel * alpha_s * alpha_c_per_filter[:, :, None, None]
        y = F.conv2d(xb[None], kernel, None, layer.stride, layer.padding, layer.dilation, g)[0]
        outs.append(y * alpha_f[:, None, None])
    return torch.stack(outs)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("temperature", [1.0, 3.7])
@pytest.mark.parametrize("kernel_num", [1, 2, 4])
@pytest.mark.parametrize("groups", ["1", "2", "dw"])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_forward_matches_paper_formula(kernel_size, stride, dilation, groups, kernel_num, temperature, batch):
    layer = make_layer(kernel_size, stride, dilation, groups, kernel_num)
    randomize_(layer, seed=kernel_size * 7 + kernel_num)
    layer.update_temperature(temperature)
    layer.eval()
    x = torch.randn(batch, layer.in_planes, 9, 11, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        out = layer(x)
    ref = reference_odconv(layer, x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


@pytest.mark.parametrize("groups, kernel_size, kernel_num, absent", [
    ("1", 3, 4, set()),
    ("dw", 3, 4, {"filter"}),
    ("2", 1, 4, {"spatial"}),
    ("1", 3, 1, {"kernel"}),
    ("dw", 1, 1, {"filter", "spatial", "kernel"}),
])
def test_attentions_are_none_exactly_where_the_head_is_absent(groups, kernel_size, kernel_num, absent):
    layer = randomize_(make_layer(kernel_size, 1, 1, groups, kernel_num), seed=0).eval()
    b, k = 2, kernel_size
    x = torch.randn(b, layer.in_planes, 6, 6)
    with torch.no_grad():
        att = layer.attention.attentions(x)
        official = layer.attention(x)
    expected_shapes = {
        "channel": (b, layer.in_planes, 1, 1),
        "filter": (b, layer.out_planes, 1, 1),
        "spatial": (b, 1, 1, 1, k, k),
        "kernel": (b, kernel_num, 1, 1, 1, 1),
    }
    for i, name in enumerate(att._fields):
        value = getattr(att, name)
        assert hasattr(layer.attention, f"{name}_fc") == (name not in absent)
        if name in absent:
            assert value is None
            assert official[i] == 1.0  # the official forward's placeholder stays
        else:
            assert value.shape == expected_shapes[name]
            assert torch.equal(official[i], value)
    if att.kernel is not None:
        torch.testing.assert_close(att.kernel.sum(dim=1), torch.ones(b, 1, 1, 1, 1))


def test_temperature_defaults_to_one_and_reaches_every_attention():
    model = create_model("od_mobilenetv2_050", kernel_num=2)
    attentions = [m for m in model.modules() if isinstance(m, Attention)]
    assert attentions and all(a.temperature == 1.0 for a in attentions)
    model.net_update_temperature(5.0)
    assert all(a.temperature == 5.0 for a in attentions)
    conv = next(m for m in model.modules() if isinstance(m, ODConv2d))
    conv.update_temperature(2.0)
    assert conv.attention.temperature == 2.0


def test_temperature_softens_the_attentions():
    layer = randomize_(make_layer(3, 1, 1, "1", 4), seed=1).eval()
    x = torch.randn(2, IN, 8, 8)
    with torch.no_grad():
        sharp = layer.attention.attentions(x).kernel
        layer.update_temperature(30.0)
        soft = layer.attention.attentions(x).kernel
    assert (soft - 0.25).abs().max() < (sharp - 0.25).abs().max() / 5


def test_trains_end_to_end():
    layer = make_layer(3, 2, 1, "2", 4).train()
    x = torch.randn(4, IN, 8, 8)
    layer(x).square().mean().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("in_planes, out_planes, groups", [(8, 12, 3), (9, 12, 2)])
def test_rejects_groups_that_do_not_divide_the_channels(in_planes, out_planes, groups):
    with pytest.raises(ValueError, match="groups"):
        ODConv2d(in_planes, out_planes, 3, groups=groups)
