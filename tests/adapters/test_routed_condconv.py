"""timm's EfficientNet-CondConv layout: one routing, computed by the block from its input, shared by the
block's three CondConv2d layers (tests/variants/timm_condconv.py). The layers are read as routed specs
(kernel attention given by the caller), their BatchNorms fold in, the routing function stays ordinary
traced ops, and every lowering that can write a routed layer matches PyTorch in both runtimes."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import example as hypothesis_example
from hypothesis import given, settings

import odexport
from odexport.adapters import AdapterOptions, find_adapter
from odexport.errors import ExportError
from odexport.lowering import get_lowering
from odexport.lowering.auto import AUTO_CANDIDATES, DEPTHWISE_ONLY
from odexport.odconv import AttentionBranch, reference_forward
from odexport.rewrite import find_unrecognised_layers, lower_model
from variants import randomize
from strategies import ASYMMETRIC, layer_cases
from variants.timm_condconv import CondConv2d, CondConvNet, RoutedCondConv

BLOCK_LAYERS = ("conv_pw", "conv_dw", "conv_pwl")
LAYER_PATHS = [f"blocks.{block}.{name}" for block in range(3) for name in BLOCK_LAYERS]
# The lowerings that write a routed layer (custom-op's node computes its own attention).
ROUTED_LOWERINGS = ("decomposed", "dynamic-weight", "folded-weight")


@pytest.fixture(scope="module")
def net():
    return randomize(CondConvNet(), seed=2)


def example(batch: int = 1) -> torch.Tensor:
    """[batch, 3, 12, 14]"""
    return torch.randn(batch, 3, 12, 14, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("path", ["blocks.0.conv_pw", "blocks.1.conv_dw", "blocks.2.conv_pwl"])
def test_each_layer_is_described_exactly_given_its_routing(net, path):
    layer = net.get_submodule(path)
    spec = find_adapter(layer).describe(layer, AdapterOptions())
    assert spec.routed and spec.active_attentions == ("kernel",) and spec.attention_width == 0
    x = torch.randn(3, layer.in_channels, 6, 7, generator=torch.Generator().manual_seed(4))
    routing = torch.rand(3, layer.num_experts, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = layer(x, routing)
    actual = reference_forward(spec, x, routing)
    assert (actual - expected).abs().max().item() <= 1e-5 * expected.abs().max().item()
    with pytest.raises(TypeError, match="routed layer takes"):
        AttentionBranch(spec)(x)


@pytest.mark.parametrize("lowering", ROUTED_LOWERINGS)
@settings(max_examples=25, deadline=None)
@given(case=layer_cases())
@hypothesis_example(case=ASYMMETRIC)
def test_every_routed_lowering_matches_the_layer_over_shapes(lowering, case):
    layer = randomize(CondConv2d(case.in_channels, case.out_channels, case.kernel_size, case.stride, case.padding,
                                 case.dilation, case.groups, bias=case.seed % 2 == 0, num_experts=case.kernel_num),
                      seed=case.seed)
    generator = torch.Generator().manual_seed(case.seed)
    x = torch.randn(case.batch, case.in_channels, case.height, case.width, generator=generator)
    routing = torch.rand(case.batch, case.kernel_num, generator=generator)
    lowered = get_lowering(lowering).build(find_adapter(layer).describe(layer, AdapterOptions())).eval()
    with torch.no_grad():
        expected, actual = layer(x, routing), lowered(x, routing)
    assert (actual - expected).abs().max().item() <= 1e-4 * max(expected.abs().max().item(), 1e-2)


def test_the_layers_are_recognised_and_their_batchnorms_fold(net):
    assert find_unrecognised_layers(net) == []
    lowered, layers = lower_model(net, "decomposed")
    assert [(layer.path, layer.adapter) for layer in layers] == [(path, "condconv-routed") for path in LAYER_PATHS]
    # bn1, bn2, bn3 follow conv_pw, conv_dw, conv_pwl although each layer is called with (x, routing).
    assert [layer.folded_batchnorm for layer in layers] == [
        path.rsplit(".", 1)[0] + f".bn{index % 3 + 1}" for index, path in enumerate(LAYER_PATHS)]
    x = example(batch=3)
    with torch.no_grad():
        expected, actual = net(x), lowered(x)
    assert (actual - expected).abs().max().item() <= 1e-5 * expected.abs().max().item()


@pytest.mark.parametrize("lowering, batch", [("decomposed", None), ("dynamic-weight", 2), ("folded-weight", 2)])
def test_the_network_converts_and_matches_in_both_runtimes(net, lowering, batch, tmp_path):
    result = odexport.convert(net, example(), target="onnx", lowering=lowering, batch=batch, output=tmp_path / "out",
                              preprocessing=None)
    assert result.parity.passed, result.parity.summary()
    assert result.manifest["dynamic"]["batch"] is (batch is None)
    layers = result.manifest["odconv_layers"]
    assert [(layer["path"], layer["adapter"], layer["lowering"], layer["kernel_attention"]) for layer in layers] == [
        (path, "condconv-routed", lowering, "given") for path in LAYER_PATHS]
    # A dynamic batch is checked at two batch sizes other than the export's.
    batch_sizes = (2, 5) if batch is None else (batch,)
    report = odexport.verify(result.output_dir, net, runtime="all", batch_sizes=batch_sizes)
    assert [r.runtime for r in report.runtimes] == ["onnxruntime", "openvino"]
    assert report.passed, report.failures()


def test_custom_op_refuses_a_routed_layer_with_a_hint(net, tmp_path):
    with pytest.raises(ExportError, match="given by its caller") as refused:
        odexport.convert(net, example(), target="onnx", lowering="custom-op", output=tmp_path / "out",
                         preprocessing=None)
    assert "decomposed" in refused.value.hint
    assert not (tmp_path / "out").exists()


def test_auto_times_a_routed_layer_fed_a_routing(tmp_path):
    module = randomize(RoutedCondConv(4, 6, 3, 2, num_experts=3))
    x = torch.randn(1, 4, 12, 14)
    result = odexport.convert(module, x, target="onnx", lowering="auto", batch=2, output=tmp_path / "out",
                              preprocessing=None)
    assert result.parity.passed, result.parity.summary()
    (layer,) = result.manifest["odconv_layers"]
    assert set(layer["auto"]["timings_ms"]) == set(AUTO_CANDIDATES) - set(DEPTHWISE_ONLY)  # not depthwise
    assert all(ms > 0 for ms in layer["auto"]["timings_ms"].values())
    assert layer["lowering"] in AUTO_CANDIDATES


def test_inspect_lists_the_routed_layers_and_the_cli_converts(net, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from odexport.cli import app as cli_app

    monkeypatch.setenv("COLUMNS", "200")  # each command sizes its tables by the terminal as it is then

    def run_cli(*args):
        return CliRunner().invoke(cli_app.app, [str(arg) for arg in args])

    found = odexport.inspect(net)
    assert [(layer["path"], layer["adapter"], layer["kernel_attention"]) for layer in found.recognised] == [
        (path, "condconv-routed", "given") for path in LAYER_PATHS]
    assert found.unrecognised == ()

    path = tmp_path / "condconv_net.pt"
    torch.save(net, path)
    listed = run_cli("inspect", path, "--unsafe-pickle", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [layer["adapter"] for layer in json.loads(listed.stdout)["recognised"]] == ["condconv-routed"] * 9
    shown = run_cli("inspect", path, "--unsafe-pickle")
    assert "routing given by the caller" in shown.stdout and "Nothing unrecognised" in shown.stdout
    converted = run_cli("convert", path, "--unsafe-pickle", "--imgsz", "12,14", "--target", "openvino",
                        "-o", tmp_path / "out")
    assert converted.exit_code == 0, converted.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["parity"]["passed"] and len(manifest["odconv_layers"]) == len(LAYER_PATHS)
