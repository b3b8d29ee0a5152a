"""The numeric precisions an artifact can be written in: one record each, found by name.

A precision says what it is, whether it needs calibration (quantized), whether it is a property of the
written file rather than of a session (stored), and the parity tolerance an artifact at it must meet.
What each runtime does with a precision is that backend's own declaration (odexport.backends); `convert
--precision`, `verify --precision` (the tolerance preset) and `profile --precision` all read this registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import Registry


@dataclass(frozen=True)
class Tolerance:
    """An output passes when every check holds:

    - error: max |candidate - reference| <= atol + rtol * max |reference| (the limit);
    - cosine: each sample's cosine similarity with the reference >= min_cosine (the sample flattened);
    - top1: for [N, classes] outputs, the share of samples with the same arg-max >= min_top1_agreement;
    - finite: no NaN or inf; shape: the reference's shape.

    The limit is relative to the output's largest magnitude, not element-wise: logits near zero would make
    an element-wise relative error meaningless. With atol 0 and the cosine and top-1 checks, the verdict is
    scale-invariant: multiplying the model's outputs by any factor changes nothing, whereas an atol alone
    passes anything once the outputs are smaller than it (a wrong model whose logits are ~1e-21).
    """

    name: str
    atol: float
    rtol: float
    min_top1_agreement: float = 0.0
    min_cosine: float = -1.0

    def limit(self, reference: np.ndarray) -> float:
        return self.atol + self.rtol * float(np.abs(reference).max(initial=0.0))


@dataclass(frozen=True)
class Precision:
    """tolerance: the parity preset an artifact at this precision is checked with (its name is the
    precision's). quantized: the artifact needs calibration data (post-training quantization). stored: the
    precision is in the file's weights, not chosen for a session (profile cannot ask a runtime for it)."""

    name: str
    summary: str
    tolerance: Tolerance
    quantized: bool = False
    stored: bool = False

    @property
    def chosen_at_run_time(self) -> bool:
        """A session can be asked to compute at it (profile --precision): neither stored nor quantized."""
        return not (self.stored or self.quantized)


PRECISIONS: Registry[Precision] = Registry("precision")
register_precision = PRECISIONS.register
unregister_precision = PRECISIONS.unregister
list_precisions = PRECISIONS.names
get_precision = PRECISIONS.get


# Tolerance values and their reasoning in README ("Precisions").
# Float32 rounding is relative, so fp32 is judged by scale alone (atol 0). A correct artifact of the tests'
# TinyODNet errs by ~1e-6 of the largest logit with cosines above 0.999999; one of another checkpoint by 0.1
# to 1 with far lower cosines. Top-1 allows one near-tie of six samples to flip.
FP32 = register_precision(Precision(
    "fp32", "32-bit float weights and arithmetic",
    Tolerance("fp32", atol=0.0, rtol=1e-4, min_top1_agreement=0.8, min_cosine=0.9999)))
# fp16 and bf16: about 1.5x the largest error measured (benchmarks/results/digits.json,
# precision_errors.json), and at most one of the six parity samples (photographs and random tensors)
# changing class.
register_precision(Precision(
    "fp16", "16-bit float weights (computed in fp32 where the runtime has no fp16 kernels)",
    Tolerance("fp16", atol=1e-3, rtol=5e-2, min_top1_agreement=0.8), stored=True))
register_precision(Precision(
    "bf16", "bfloat16 arithmetic (CPUs with AVX512-BF16 or AMX)",
    Tolerance("bf16", atol=1e-2, rtol=2.5e-1, min_top1_agreement=0.8)))
# Quantization error is large on inputs unlike the calibration images (a digits model shown photographs):
# int8 parity catches a broken artifact; accuracy is measured on held-out data.
register_precision(Precision(
    "int8", "8-bit integer convolutions, post-training quantized on calibration images",
    Tolerance("int8", atol=5e-2, rtol=7e-1, min_top1_agreement=0.5), quantized=True))


def tolerance_presets() -> dict[str, Tolerance]:
    """{precision name: its parity tolerance preset}."""
    return {precision.name: precision.tolerance for precision in PRECISIONS}
