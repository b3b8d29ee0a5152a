"""Structure proposes, behaviour decides: a description that does not reproduce the layer's forward is
never used, a layer no adapter confirms is reported (and refused) with the errors, confirmation leaves
the model as it was, and inspect shows every adapter tried."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

import odexport
from odexport.adapters import (
    Adapter,
    AdapterOptions,
    Requirement,
    list_adapters,
    matches_all,
    register_adapter,
    resolve,
    unregister_adapter,
)
from odexport.adapters.official import OFFICIAL
from odexport.pipeline.verdict import parity_hint
from odexport.errors import InputError
from odexport.models import ODConv2d
from odexport.rewrite import find_odconv_layers, find_unrecognised_layers
from variants import randomize
from variants.forks import ThirdGenODConv, UnnormalisedODConv
from variants.fused import WrappedODConv


def _doubled_temperature(module: nn.Module, options: AdapterOptions):
    """The official description with the temperature read twice as large: plausible, and wrong."""
    spec = OFFICIAL.describe(module, options)
    return dataclasses.replace(spec, head_weight=spec.head_weight / 2, head_bias=spec.head_bias / 2)


WRONG = Adapter("wrong-temperature", "the official layout, described with a doubled temperature",
                OFFICIAL.matches, _doubled_temperature, requirements=OFFICIAL.requirements)


@pytest.fixture
def wrong_adapter_first():
    """WRONG registered before every other adapter, so it is the first tried on an official layer."""
    register_adapter(WRONG, before=list_adapters()[0].name)
    yield WRONG
    unregister_adapter(WRONG.name)


class TanhODConv(ODConv2d):
    """A fork that squashes its output inside forward, with no module to show it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(super().forward(x))


class NetWith(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(torch.relu(self.stem(x))).mean(dim=(2, 3))


def test_a_wrong_description_is_not_used_and_the_next_adapter_claims_the_layer(wrong_adapter_first, tmp_path):
    model = randomize(WrappedODConv(4, 6, 3, 1, kernel_num=3), seed=1)
    resolution = resolve(model.odconv)
    (wrong, official, *rest) = resolution.attempts
    assert (wrong.adapter, wrong.confirmed) == ("wrong-temperature", False) and wrong.error > 1e-3
    assert "does not reproduce" in wrong.detail
    assert (official.adapter, official.confirmed) == ("official", True) and official.error < 1e-4
    assert resolution.adapter.name == "official" and all(attempt.confirmed is None for attempt in rest)
    result = odexport.convert(model, torch.randn(1, 4, 12, 12), target="onnx", output=tmp_path / "out",
                              preprocessing=None)
    assert result.parity.passed and [layer["adapter"] for layer in result.manifest["odconv_layers"]] == ["official"]


def test_a_layer_only_a_wrong_adapter_matches_never_reaches_export(tmp_path):
    """No wrong description is exported: every adapter's description of this layer is wrong (a tanh inside
    its forward), so no adapter claims it and the generic path exports the layer as it is."""
    model = randomize(NetWith(TanhODConv(4, 6, 3, 1, 1, reduction=0.25, kernel_num=3)), seed=2)
    assert find_odconv_layers(model) == []
    (found,) = find_unrecognised_layers(model)
    assert (found.path, found.type) == ("layer", f"{TanhODConv.__module__}.TanhODConv")
    assert [attempt.adapter for attempt in found.attempts] == ["official", "linear-heads"]
    assert all(attempt.confirmed is False and attempt.error > 1e-3 for attempt in found.attempts)
    assert "official: its description does not reproduce the layer's forward: relative error" in found.reason
    result = odexport.convert(model, torch.randn(1, 3, 12, 12), target="onnx", output=tmp_path / "out")
    assert result.manifest["odconv_layers"] == []
    assert [layer["path"] for layer in result.manifest["generic_layers"]] == ["layer"]
    assert result.parity.passed


def test_an_adapter_whose_describe_fails_does_not_claim_the_layer():
    def broken(module, options):
        raise KeyError("kernel_fc")

    adapter = Adapter("broken", "describes nothing", OFFICIAL.matches, broken)
    register_adapter(adapter, before="fused-bn-act")
    try:
        resolution = resolve(randomize(ODConv2d(4, 6, 3, 1, 1, reduction=0.25, kernel_num=2)))
    finally:
        unregister_adapter("broken")
    assert resolution.attempts[0].detail == "describing the layer failed: KeyError: 'kernel_fc'"
    assert resolution.adapter.name == "official"


def test_an_attention_batchnorm_is_read_from_behaviour():
    """Applied (official), never applied (the fork), skipped at batch 1 only (third generation)."""
    official = resolve(randomize(ODConv2d(4, 6, 3, 1, 1, reduction=0.25, kernel_num=3)))
    unused = resolve(randomize(UnnormalisedODConv(4, 6, 3, 1, 1, kernel_num=3)))
    third = resolve(randomize(ThirdGenODConv(4, 6, 3, 1, 1)))
    assert (official.adapter.name, official.attention_batchnorm) == ("official", "applied")
    assert (unused.adapter.name, unused.attention_batchnorm) == ("official", "unused")
    assert (third.adapter.name, third.attention_batchnorm) == ("linear-heads", "batch-dependent")
    # Only the batch-dependent layer needs the user's choice.
    assert unused.options(AdapterOptions()).attention_batchnorm == "skip" and third.options(AdapterOptions()) == \
        AdapterOptions()


def test_confirmation_leaves_the_model_as_it_was():
    model = randomize(NetWith(ThirdGenODConv(4, 6, 3, 1, 1)), seed=3).train()
    model.layer.dropout.train()
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    calls = []
    model.layer.register_forward_hook(lambda *args: calls.append(args))
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    resolution = resolve(model.layer)
    assert resolution.adapter is not None
    assert torch.equal(torch.rand(3), expected_draw)  # the global RNG did not move
    assert all(module.training for module in model.modules())
    assert all(torch.equal(state[name], tensor) for name, tensor in model.state_dict().items())
    assert calls == []  # the caller's hooks did not see the probe


def test_a_refused_layer_names_what_the_closest_adapters_miss(tmp_path):
    layer = ODConv2d(4, 6, 3, 1, 1, reduction=0.25, kernel_num=2)
    layer.attention.chan_fc = layer.attention._modules.pop("channel_fc")  # a fork that renamed one head
    (found,) = find_unrecognised_layers(NetWith(layer))
    assert found.attempts == ()
    assert "closest adapters: " in found.reason and "official needs attention.channel_fc, a module" in found.reason
    with pytest.raises(InputError, match="layer .*ODConv2d.*needs attention.channel_fc"):
        odexport.convert(NetWith(layer), torch.randn(1, 3, 12, 12), target="onnx", output=tmp_path / "out")


def test_requirements_say_what_is_missing_in_order():
    adapter = Adapter("two-steps", "", matches_all(()), lambda m, o: None, requirements=(
        Requirement("a 5-D 'weight'", lambda m: m.weight.dim() == 5),
        Requirement("a child 'gate'", lambda m: isinstance(m.gate, nn.Module))))
    assert adapter.structure_gap(nn.Linear(2, 3)) == (0, "a 5-D 'weight'")
    assert adapter.structure_gap(ODConv2d(4, 4, 3, kernel_num=2)) == (1, "a child 'gate'")


def test_inspect_lists_every_adapter_tried(wrong_adapter_first):
    model = NetWith(randomize(UnnormalisedODConv(4, 6, 3, 1, 1, kernel_num=3)))
    (record,) = odexport.inspect(model).recognised
    tried = [(attempt["adapter"], attempt["confirmed"]) for attempt in record["adapters"]]
    assert tried == [("wrong-temperature", False), ("official", True), ("linear-heads", None)]
    assert record["adapters"][0]["error"] > 1e-3 and record["adapters"][1]["error"] < 1e-4
    assert "never applied" in record["adapters"][1]["detail"]


def test_the_parity_hint_suggests_another_lowering_only_when_a_layer_was_lowered():
    layers = find_odconv_layers(NetWith(randomize(ODConv2d(4, 6, 3, 1, 1, reduction=0.25, kernel_num=2))))
    assert "rerun with another --lowering" in parity_hint(layers)
    assert "checked against the layer's own forward" in parity_hint(layers)
    assert "rerun with another --lowering" not in parity_hint([]) and "cannot help" in parity_hint([])


def test_the_inspect_command_shows_the_adapters_tried_and_their_errors(tmp_path):
    from typer.testing import CliRunner

    from odexport.cli.app import app

    path = tmp_path / "fork.pt"
    torch.save(randomize(UnnormalisedODConv(4, 6, 3, 1, 1, kernel_num=3)), path)
    shown = CliRunner().invoke(app, ["inspect", str(path), "--unsafe-pickle"])
    assert shown.exit_code == 0, shown.stderr
    # The table wraps its cells: read the "adapters tried" column's words in order.
    words = [word for line in shown.stdout.splitlines() for word in line.split("│")[7:8] if word.strip()]
    assert " ".join(word.strip() for word in words).startswith("✓ official ("), shown.stdout
    listed = CliRunner().invoke(app, ["inspect", str(path), "--unsafe-pickle", "--json"])
    (record,) = json.loads(listed.stdout)["recognised"]
    assert [(a["adapter"], a["confirmed"]) for a in record["adapters"]] == [("official", True), ("linear-heads", None)]
