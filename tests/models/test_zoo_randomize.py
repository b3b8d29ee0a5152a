"""randomize_: seeded, complete, attentions far from their init, deep models numerically sane."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odexport.models import ODConv2d, create_model, randomize_


def attentions_of(model: nn.Module, x: torch.Tensor) -> list:
    """The ODAttentions of every ODConv layer for input x, in execution order."""
    found = []

    def record(layer, args, _out):
        found.append(layer.attention.attentions(args[0]))

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, ODConv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return found


def test_same_seed_same_weights_whatever_the_global_rng():
    torch.manual_seed(1)
    a = randomize_(create_model("od_mobilenetv2_050", kernel_num=4), seed=3).state_dict()
    torch.manual_seed(2)
    torch.rand(1000)
    b = randomize_(randomize_(create_model("od_mobilenetv2_050", kernel_num=4), seed=9), seed=3).state_dict()
    c = randomize_(create_model("od_mobilenetv2_050", kernel_num=4), seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["classifier.1.weight"], c["classifier.1.weight"])


def test_fills_every_parameter_and_statistic():
    model = create_model("od_resnet18", kernel_num=2).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    randomize_(model, seed=0)
    assert model.training  # the mode is kept
    after = model.state_dict()
    for key, value in after.items():
        if key.endswith("num_batches_tracked"):
            assert value.item() > 0, key
        else:
            assert not torch.equal(value, before[key]), key
            assert torch.isfinite(value).all(), key
        if key.endswith("running_var"):
            assert (value > 0).all(), key


def test_attentions_are_spread_and_depend_on_the_input():
    model = randomize_(create_model("od_mobilenetv2_050", kernel_num=4), seed=0).eval()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    atts = attentions_of(model, x)
    sigmoids = torch.cat([a.flatten() for att in atts
                          for a in (att.channel, att.filter, att.spatial) if a is not None])
    logits = torch.logit(sigmoids.double())
    assert 0.8 < logits.std() < 3.0
    assert (logits.abs() < 4).double().mean() > 0.95
    kernels = torch.cat([att.kernel.flatten(1) for att in atts])  # [layers * B, 4]
    assert (kernels.max(dim=1).values - kernels.min(dim=1).values).mean() > 0.3  # far from uniform 0.25
    # each layer gives different samples different attentions
    for att in atts:
        assert (att.channel - att.channel[:1]).abs().max() > 1e-3


def assert_sane_at_64(model: nn.Module) -> None:
    """Finite logits of a sensible spread on seeded 64x64 inputs, and not one class for every input."""
    x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    assert torch.isfinite(logits).all()
    assert 0.1 < logits.std() < 100
    assert len(set(logits.argmax(dim=1).tolist())) >= 3


def test_needs_a_batch_to_calibrate():
    with pytest.raises(ValueError, match="batch"):
        randomize_(ODConv2d(4, 4, 3, padding=1), seed=0, example_input=torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match="batches of at least 2"):
        randomize_(ODConv2d(4, 4, 3, padding=1), seed=0, calibration_batches=((1, 8),))


def test_calibrated_at_one_size_the_model_is_sane_at_that_size():
    """The quicker calibration the zoo sweep's checkpoints take: one batch at the size they convert at."""
    model = randomize_(create_model("od_resnet18", kernel_num=1), seed=0, calibration_batches=((8, 64),)).eval()
    other = randomize_(create_model("od_resnet18", kernel_num=1), seed=0, calibration_batches=((8, 32),))
    assert not torch.equal(model.bn1.running_var, other.bn1.running_var)  # the sizes asked for were used
    assert_sane_at_64(model)


@pytest.mark.slow
@pytest.mark.parametrize("name, kernel_num", [
    ("od_resnet101", 1), ("od_mobilenetv2_100", 1), ("od_mobilenetv2_100", 4),
])
def test_deep_models_stay_numerically_sane(name, kernel_num):
    assert_sane_at_64(randomize_(create_model(name, kernel_num=kernel_num), seed=0).eval())
