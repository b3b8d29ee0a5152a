"""Seeded random weights that make a model's ODConv attentions do real work, for parity tests.

A freshly built model has all attention-head biases at zero and BatchNorm at identity, so every sigmoid
sits at 0.5 and the kernel softmax is uniform: a wrong export can still match it. :func:`randomize_`
spreads every parameter and BatchNorm statistic instead. It also keeps the model well conditioned (float32
and float64 agree to ~1e-6 of the largest logit), or a parity check would fail on float32 rounding alone:

- BatchNorm statistics are drawn around those a seeded calibration batch actually produces (as training
  would leave them), so each BatchNorm roughly normalises. The batch is half white noise, half noise with
  the 1/f spectrum of photographs, at three sizes: statistics from white noise alone do not normalise
  photographs, whose features then grow block after block (ODConv ResNet-50 logits reached 1e23).
- A BatchNorm divides by the root mean square of its input, not by its spread about the mean, and its
  shift is mostly positive. Dividing a channel with a large mean by its small spread magnifies float32
  rounding in proportion, at every layer; a random network is then chaotic (a 1e-6 change of the input
  moved MobileNetV2 logits by 1e-3).
- The last BatchNorm of a residual branch gets a small weight, so each block adds a little to its input
  and depth compounds neither size nor rounding (the usual zero-gamma init, short of zero).
- Linear layers (the classifier) centre and scale their outputs on the calibration batches. Features of
  a random network share a large mean; without this one class wins for every input.
- Attention logits get their spread from the head biases, and only a small input-dependent part from
  the head weights. A large input-dependent part makes a random ODConv ResNet unstable: an input whose
  features are a little larger gets larger attentions, hence larger features in the next layer, and so
  on through the depth. For the same reason the squeeze BatchNorm (``attention.bn``) normalises every
  channel by the same size, that of its whole input.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mobilenetv2 import InvertedResidual
from .odconv import Attention, ODConv2d
from .resnet import BasicBlock, Bottleneck

_ATTENTION_HEADS = ("channel_fc", "filter_fc", "spatial_fc", "kernel_fc")
# Logits = bias uniform in [-2.5, 2.5] + an input-dependent part of std ~0.1: sigmoids land well away
# from 0.5 and the kernel softmax well away from uniform, and both still differ between inputs.
_HEAD_BIAS = 2.5
_HEAD_GAIN = 0.3
_RELU_GAIN = math.sqrt(2.0)
# BatchNorm weight uniform in this range; bias normal with this mean and std.
_NORM_WEIGHT = (0.5, 1.5)
_NORM_BIAS = (0.3, 0.2)
# Weight of the last BatchNorm of a residual branch: each block adds ~0.25 of its input's size.
_BRANCH_WEIGHT = (0.1, 0.4)
# A channel (or class) quieter than this fraction of its layer's median second moment is scaled as if it
# were that loud: one that barely fires on the calibration batches would blow up on other inputs.
_QUIET_FLOOR = 0.1
# Default calibration: seeded batches [B, C_in, S, S] for these (B, S), each half white noise, half 1/f
# noise. Features of a random network shift with the input size, so calibrating at one size leaves the
# classifier favouring one class for every input at other sizes.
_CALIBRATION_BATCHES = ((8, 64), (8, 32), (4, 128))

_BatchNorm = nn.modules.batchnorm._BatchNorm

# The BatchNorm ending the residual branch of each zoo block (None: this block has no residual). A model
# outside the zoo keeps full-size branches.
_BRANCH_END: dict[type[nn.Module], Callable[[nn.Module], nn.Module | None]] = {
    BasicBlock: lambda block: block.bn2,
    Bottleneck: lambda block: block.bn3,
    InvertedResidual: lambda block: block.conv[-1] if block.use_res_connect else None,
}


def randomize_(model: nn.Module, seed: int, example_input: Tensor | None = None,
               calibration_batches: tuple[tuple[int, int], ...] = _CALIBRATION_BATCHES) -> nn.Module:
    """Fill every parameter and BatchNorm statistic of ``model`` in place from ``seed``; return ``model``.

    Conv and linear weights (ODConv kernel stacks included) are normal with std = gain / sqrt(fan_in),
    biases uniform; BatchNorm weight is uniform in [0.5, 1.5] ([0.1, 0.4] at the end of a residual branch)
    and bias normal around 0.3; running_mean is the calibration mean plus noise, running_var the
    calibration mean square times uniform [0.5, 2] (so positive), num_batches_tracked a random positive
    count. Linear layers are then rescaled and shifted so that each output has mean ~0 and std ~1 on the
    calibration batches.

    example_input: calibration batch [B >= 2, ...]; default three seeded batches [8, C_in, 64, 64],
    [8, C_in, 32, 32] and [4, C_in, 128, 128], half white N(0, 1), half photograph-like 1/f noise, with C_in
    taken from the first convolution. Deterministic for a given seed and model, whatever the global RNG state; the model's
    train/eval mode is kept.
    calibration_batches: the (B, S) of the default calibration batches. Fewer and smaller cost less (they
    are most of the time randomize_ takes on a deep model) and normalise well only at the sizes given.
    """
    gen = torch.Generator().manual_seed(seed)
    heads = {id(m.head(h)) for m in model.modules() if isinstance(m, Attention)
             for h in _ATTENTION_HEADS if m.head(h) is not None}
    branch_ends = {id(end) for m in model.modules() if type(m) in _BRANCH_END
                   for end in [_BRANCH_END[type(m)](m)] if end is not None}
    done: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ODConv2d):
                fan_in = module.weight[0, 0].numel()
                _copy(module.weight, _normal(module.weight.shape, _RELU_GAIN / math.sqrt(fan_in), gen))
            elif id(module) in heads:
                _fill_weight_and_bias(module, gen, gain=_HEAD_GAIN, bias_range=_HEAD_BIAS)
            elif isinstance(module, _BatchNorm):
                _fill_batchnorm_affine(module, gen, _BRANCH_WEIGHT if id(module) in branch_ends else _NORM_WEIGHT)
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
        if example_input is None:
            if not calibration_batches or min(batch for batch, _ in calibration_batches) < 2:
                raise ValueError(f"randomize_ needs calibration batches of at least 2, got {calibration_batches}")
            batches = _calibration_inputs(model, gen, calibration_batches)
        elif example_input.shape[0] < 2:
            # The squeeze BatchNorms see one value per sample and channel: one sample has no statistics.
            raise ValueError(f"randomize_ needs an example_input batch of at least 2, got {example_input.shape[0]}")
        else:
            batches = [example_input]
        _calibrate(model, gen, batches)
    return model


def _calibrate(model: nn.Module, gen: torch.Generator, batches: list[Tensor]) -> None:
    """Set BatchNorm running stats, then Linear weights and biases, from what each sees on ``batches``.

    Each layer is set just before it runs, so later ones see already calibrated inputs, and pools what it
    saw on every batch so far, each batch weighing the same whatever its size. The Linear layers get a
    second run over the batches, once every BatchNorm is final: features computed under statistics that
    later batches then changed would leave the classifier off-centre at some input sizes.
    """
    squeezes = {id(m.bn) for m in model.modules() if isinstance(m, Attention)}
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # Noise drawn here, in module order, so the values do not depend on the order the layers run in.
    calibrations = {id(m): _Calibration(m, gen, squeeze=id(m) in squeezes) for m in norms + linears}
    first = next(model.parameters(), None)
    batches = [x.to(device=first.device, dtype=first.dtype) if first is not None and x.is_floating_point() else x
               for x in batches]
    was_training = model.training
    model.eval()
    try:
        for layers in (norms, linears):
            if layers:
                _run_with_hooks(model, batches, {m: calibrations[id(m)] for m in layers})
    finally:
        model.train(was_training)
    for m in norms:
        m.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (1,), generator=gen)))


def _run_with_hooks(model: nn.Module, batches: list[Tensor], hooks: dict[nn.Module, _Calibration]) -> None:
    handles = [m.register_forward_pre_hook(hook) for m, hook in hooks.items()]
    try:
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()


class _Calibration:
    """Forward pre-hook of one BatchNorm or Linear: pools the moments of what the layer sees, and sets it.

    BatchNorm: running_mean = mean + noise, running_var = mean square * uniform [0.5, 2], per channel (the
    squeeze BatchNorm: one mean square for all channels). Linear: the weight is rescaled and the mean
    subtracted from the bias, so that every output has std ~1 and mean ~ its original bias.
    """

    def __init__(self, module: nn.Module, gen: torch.Generator, squeeze: bool) -> None:
        self.squeeze = squeeze
        self.moments: list[tuple[Tensor, Tensor]] = []  # per batch: (mean, mean square) per channel
        if isinstance(module, nn.Linear):
            self.weight = module.weight.detach().double().clone()
            self.bias = None if module.bias is None else module.bias.detach().double().clone()
        else:
            c = module.num_features
            self.mean_noise = _normal((c,), 0.2, gen).double()
            self.var_factor = _uniform((c,), 0.5, 2.0, gen).double()

    def __call__(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        x = args[0].detach().double()
        if isinstance(module, nn.Linear):
            x = F.linear(x, self.weight).flatten(0, -2)  # [N, out_features]
            dims: list[int] = [0]
        else:
            dims = [d for d in range(x.dim()) if d != 1]
        self.moments.append((x.mean(dim=dims), x.square().mean(dim=dims)))
        mean = torch.stack([m for m, _ in self.moments]).mean(dim=0)
        square = torch.stack([s for _, s in self.moments]).mean(dim=0)
        if isinstance(module, nn.Linear):
            std = _floored(square - mean**2).sqrt()
            _copy(module.weight, self.weight / std[:, None])
            if self.bias is not None:
                _copy(module.bias, self.bias - mean / std)
            return
        if self.squeeze:
            var = torch.full_like(square, square.mean().item() + 1e-12)
        else:
            var = _floored(square)
        _copy(module.running_mean, mean + self.mean_noise * var.sqrt())
        _copy(module.running_var, var * self.var_factor)


def _floored(square: Tensor) -> Tensor:
    return square.clamp_min(max(_QUIET_FLOOR * square.median().item(), 1e-6))


def _calibration_inputs(model: nn.Module, gen: torch.Generator, sizes: tuple[tuple[int, int], ...]) -> list[Tensor]:
    """Seeded batches [B, C_in, S, S], one for each (B, S) of ``sizes``, for a model whose first layer is a 2D conv.

    Half of each batch is white N(0, 1) noise, half photograph-like noise: parity checks feed both.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, ODConv2d)):
            channels = m.in_channels if isinstance(m, nn.Conv2d) else m.in_planes
            break
    else:
        raise ValueError("randomize_ needs example_input for a model whose first layer is not a 2D convolution")
    return [torch.cat([torch.randn(batch // 2, channels, size, size, generator=gen),
                       _photograph_like(batch - batch // 2, channels, size, gen)])
            for batch, size in sizes]


def _photograph_like(count: int, channels: int, size: int, gen: torch.Generator) -> Tensor:
    """[count, channels, size, size] noise shaped like ImageNet-normalised photographs.

    Amplitude spectrum 1/f (that of natural images, the same at every scale, so statistics carry over
    between input sizes), colour channels mostly shared, unit std, and an offset per sample and channel.
    """
    fy = torch.fft.fftfreq(size).abs()[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    amplitude = 1.0 / (fy**2 + fx**2).sqrt().clamp_min(1.0 / size)
    amplitude[0, 0] = 0.0

    def fields(n: int) -> Tensor:
        shape = (n, size, size // 2 + 1)
        spectrum = torch.complex(torch.randn(shape, generator=gen), torch.randn(shape, generator=gen))
        x = torch.fft.irfft2(spectrum * amplitude, s=(size, size))
        return x / x.flatten(1).std(dim=1)[:, None, None]

    shared = fields(count)[:, None]
    own = fields(count * channels).view(count, channels, size, size)
    offset = _normal((count, channels, 1, 1), 0.5, gen)
    return math.sqrt(0.8) * shared + math.sqrt(0.2) * own + offset


def _fill_weight_and_bias(m: nn.Module, gen: torch.Generator, gain: float, bias_range: float) -> None:
    """Conv or linear: weight std = gain / sqrt(fan_in); bias uniform in [-bias_range, bias_range]."""
    weight: Tensor = m.weight
    _copy(weight, _normal(weight.shape, gain / math.sqrt(weight[0].numel()), gen))
    if getattr(m, "bias", None) is not None:
        _copy(m.bias, _uniform(m.bias.shape, -bias_range, bias_range, gen))


def _fill_batchnorm_affine(m: _BatchNorm, gen: torch.Generator, weight_range: tuple[float, float]) -> None:
    if m.weight is not None:
        _copy(m.weight, _uniform((m.num_features,), *weight_range, gen))
        _copy(m.bias, _NORM_BIAS[0] + _normal((m.num_features,), _NORM_BIAS[1], gen))


def _normal(shape: tuple[int, ...] | torch.Size, std: float, gen: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=gen) * std


def _uniform(shape: tuple[int, ...] | torch.Size, low: float, high: float, gen: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def _copy(dst: Tensor, src: Tensor) -> None:
    dst.copy_(src.to(dtype=dst.dtype, device=dst.device))
