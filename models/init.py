"""Seeded random weights that make a model's ODConv attentions do real work, for parity tests.

A freshly built model has all attention-head biases at zero and BatchNorm at identity, so every sigmoid
sits at 0.5 and the kernel softmax is uniform: a wrong export can still match it. :func:`randomize_`
spreads every parameter and BatchNorm statistic instead, and keeps deep models numerically sane:

- BatchNorm statistics drawn blindly leave eval-mode activations unscaled: ResNet-101 logits reach
  ~1e5, with ODConv ~1e20. So they are drawn around the statistics a seeded random batch actually
  produces (as training would leave them): each BatchNorm roughly normalises, activations stay O(1).
- Attention logits get their spread from the head biases, and only a small input-dependent part from
  the head weights. A large input-dependent part makes a random ODConv ResNet unstable: an input whose
  features are a little larger gets larger attentions, hence larger features in the next layer, and so
  on through the depth. For the same reason the squeeze BatchNorm (``attention.bn``) normalises by the
  size of its input, not by its much smaller spread between samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .odconv import Attention, ODConv2d

_ATTENTION_HEADS = ("channel_fc", "filter_fc", "spatial_fc", "kernel_fc")
# Logits = bias uniform in [-2.5, 2.5] + an input-dependent part of std ~0.1: sigmoids land well away
# from 0.5 and the kernel softmax well away from uniform, and both still differ between inputs.
_HEAD_BIAS = 2.5
_HEAD_GAIN = 0.3
_RELU_GAIN = math.sqrt(2.0)
# Calibration batch used when the caller gives no example input: [8, C_in, 64, 64].
_CALIBRATION_SHAPE = (8, 64, 64)

_BatchNorm = nn.modules.batchnorm._BatchNorm


def randomize_(model: nn.Module, seed: int, example_input: Tensor | None = None) -> nn.Module:
    """Fill every parameter and BatchNorm statistic of ``model`` in place from ``seed``; return ``model``.

    Conv and linear weights (ODConv kernel stacks included) are normal with std = gain / sqrt(fan_in),
    biases uniform; BatchNorm weight is uniform in [0.5, 1.5] and bias normal; running_mean is the
    calibration mean plus noise, running_var the calibration variance times uniform [0.5, 2] (so
    positive), num_batches_tracked a random positive count.

    example_input: calibration batch [B >= 2, ...]; default seeded N(0, 1) of shape [8, C_in, 64, 64],
    with C_in taken from the first convolution. Deterministic for a given seed and model, whatever the
    global RNG state; the model's train/eval mode is kept.
    """
    gen = torch.Generator().manual_seed(seed)
    heads = {id(m.head(h)) for m in model.modules() if isinstance(m, Attention)
             for h in _ATTENTION_HEADS if m.head(h) is not None}
    done: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ODConv2d):
                fan_in = module.weight[0, 0].numel()
                _copy(module.weight, _normal(module.weight.shape, _RELU_GAIN / math.sqrt(fan_in), gen))
            elif id(module) in heads:
                _fill_weight_and_bias(module, gen, gain=_HEAD_GAIN, bias_range=_HEAD_BIAS)
            elif isinstance(module, _BatchNorm):
                _fill_batchnorm_affine(module, gen)
            elif isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
                _fill_weight_and_bias(module, gen, gain=_RELU_GAIN, bias_range=0.1)
            else:
                continue
            done.update(id(p) for p in module.parameters(recurse=False))
        # Parameters of module types not known above still get a scale-aware random value.
        for p in model.parameters():
            if id(p) not in done:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                _copy(p, _normal(p.shape, 1.0 / math.sqrt(fan_in), gen))
                done.add(id(p))
        _calibrate_batchnorm(model, gen, example_input)
    return model


def _calibrate_batchnorm(model: nn.Module, gen: torch.Generator, example_input: Tensor | None) -> None:
    """Set every BatchNorm's running stats from its input on one calibration batch, plus noise."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return
    x = _calibration_input(model, gen) if example_input is None else example_input
    if x.shape[0] < 2:
        # The squeeze BatchNorms see one value per sample and channel: one sample has no statistics.
        raise ValueError(f"randomize_ needs an example_input batch of at least 2, got {x.shape[0]}")
    first = next(model.parameters(), None)
    if first is not None and x.is_floating_point():
        x = x.to(device=first.device, dtype=first.dtype)
    squeezes = {id(m.bn) for m in model.modules() if isinstance(m, Attention)}
    # Each BatchNorm is set just before it runs, so later ones see already calibrated inputs. The noise
    # is drawn there, in execution order, which is fixed for a given model.
    handles = [m.register_forward_pre_hook(_calibration_hook(gen, squeeze=id(m) in squeezes)) for m in norms]
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    for m in norms:
        m.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (1,), generator=gen)))


def _calibration_hook(gen: torch.Generator, squeeze: bool) -> Callable[[_BatchNorm, tuple[Tensor, ...]], None]:
    def hook(module: _BatchNorm, args: tuple[Tensor, ...]) -> None:
        x = args[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
        if squeeze:
            var = torch.full_like(var, (var + mean**2).mean().item() + 1e-12)
        else:
            # A channel that barely fires on the calibration batch would be blown up on other inputs.
            var = var.clamp_min(max(1e-2 * var.mean().item(), 1e-6))
        c = module.num_features
        _copy(module.running_mean, mean + _normal((c,), 0.2, gen) * var.sqrt())
        _copy(module.running_var, var * _uniform((c,), 0.5, 2.0, gen))

    return hook


def _calibration_input(model: nn.Module, gen: torch.Generator) -> Tensor:
    """Seeded N(0, 1) input [8, C_in, 64, 64] for a model whose first layer is a 2D convolution."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return torch.randn(_CALIBRATION_SHAPE[0], m.in_channels, *_CALIBRATION_SHAPE[1:], generator=gen)
        if isinstance(m, ODConv2d):
            return torch.randn(_CALIBRATION_SHAPE[0], m.in_planes, *_CALIBRATION_SHAPE[1:], generator=gen)
    raise ValueError("randomize_ needs example_input for a model whose first layer is not a 2D convolution")


def _fill_weight_and_bias(m: nn.Module, gen: torch.Generator, gain: float, bias_range: float) -> None:
    """Conv or linear: weight std = gain / sqrt(fan_in); bias uniform in [-bias_range, bias_range]."""
    weight: Tensor = m.weight
    _copy(weight, _normal(weight.shape, gain / math.sqrt(weight[0].numel()), gen))
    if getattr(m, "bias", None) is not None:
        _copy(m.bias, _uniform(m.bias.shape, -bias_range, bias_range, gen))


def _fill_batchnorm_affine(m: _BatchNorm, gen: torch.Generator) -> None:
    if m.weight is not None:
        _copy(m.weight, _uniform((m.num_features,), 0.5, 1.5, gen))
        _copy(m.bias, _normal((m.num_features,), 0.2, gen))


def _normal(shape: tuple[int, ...] | torch.Size, std: float, gen: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=gen) * std


def _uniform(shape: tuple[int, ...] | torch.Size, low: float, high: float, gen: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def _copy(dst: Tensor, src: Tensor) -> None:
    dst.copy_(src.to(dtype=dst.dtype, device=dst.device))
