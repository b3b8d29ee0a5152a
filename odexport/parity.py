"""Compare a candidate runtime's outputs with the reference's; results are plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .backends.base import Runner
from .inputs import batches
from .precisions import FP32, Tolerance



@dataclass(frozen=True)
class OutputParity:
    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float  # max abs error / max |reference|
    limit: float
    top1_agreement: float | None  # fraction of samples whose arg-max matches; None for non-vector outputs
    passed: bool
    # Added for `verify`; defaults keep positional construction working. Relative errors are relative to
    # max |reference|, like max_rel_error and the tolerance.
    p99_abs_error: float | None = None
    mean_rel_error: float | None = None
    p99_rel_error: float | None = None
    cosine_similarity: float | None = None  # the lowest over samples (each sample flattened)
    top5_agreement: float | None = None  # fraction of samples with the same set of 5 top classes; None if <= 5
    reference_shape: tuple[int, ...] | None = None  # differs from shape only when the shapes mismatch
    failed_checks: tuple[str, ...] = ()  # of Tolerance's: "shape", "finite", "error", "cosine", "top1"
    degenerate: str | None = None  # why the reference outputs cannot tell a right artifact from a wrong one

    def problems(self, tolerance: Tolerance) -> list[str]:
        """A phrase per failed check other than "error" (whose wording is the caller's)."""
        phrases = {
            "shape": f"has shape {list(self.shape)}, PyTorch gives {list(self.reference_shape or ())}",
            "finite": "has NaN or inf values",
            "cosine": f"lowest per-sample cosine similarity {_number(self.cosine_similarity, '.6f')} is below "
                      f"{tolerance.min_cosine:g}",
            "top1": f"top-1 agreement {_number(self.top1_agreement, '.1%')} is below "
                    f"{tolerance.min_top1_agreement:.1%}",
        }
        return [phrases[check] for check in self.failed_checks if check in phrases]


@dataclass(frozen=True)
class ParityReport:
    runtime: str
    tolerance: Tolerance
    samples: int
    batch_sizes: tuple[int, ...]
    input_shapes: tuple[tuple[int, ...], ...]  # [C, H, W] of each sample set
    outputs: tuple[OutputParity, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(output.passed for output in self.outputs)

    @property
    def degenerate(self) -> dict[str, str]:
        """{output name: why its reference cannot tell a right artifact from a wrong one}."""
        return {output.name: output.degenerate for output in self.outputs if output.degenerate}

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    def summary(self) -> str:
        parts = []
        for out in self.outputs:
            agree = "" if out.top1_agreement is None else f", top-1 agreement {out.top1_agreement:.0%}"
            parts.append(
                f"{out.name}: max abs {out.max_abs_error:.2e} (limit {out.limit:.2e}), "
                f"max rel {out.max_rel_error:.2e}{agree}"
            )
        return "; ".join(parts)


def compare_output(name: str, reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance) -> OutputParity:
    """reference, candidate: [N, ...], axis 0 the sample."""
    degenerate = degenerate_reason(reference)
    if reference.shape != candidate.shape:
        return OutputParity(name, tuple(candidate.shape), float("inf"), float("inf"), float("inf"),
                            tolerance.limit(reference), None, False, reference_shape=tuple(reference.shape),
                            failed_checks=("shape",), degenerate=degenerate)
    error = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    scale = float(np.abs(reference).max(initial=0.0)) or 1.0
    top1 = top5 = None
    if reference.ndim == 2:
        top1 = float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))
        top5 = _topk_agreement(reference, candidate, 5)
    max_abs = float(error.max(initial=0.0))
    p99_abs = float(np.percentile(error, 99)) if error.size else 0.0
    limit = tolerance.limit(reference)
    cosine = _lowest_cosine(reference, candidate)
    failed = tuple(check for check, ok in (
        ("finite", bool(np.isfinite(candidate).all())),
        ("error", max_abs <= limit),
        ("cosine", cosine is None or cosine >= tolerance.min_cosine),
        ("top1", top1 is None or top1 >= tolerance.min_top1_agreement),
    ) if not ok)
    return OutputParity(name, tuple(reference.shape), max_abs, float(error.mean()), max_abs / scale, limit, top1,
                        not failed, p99_abs_error=p99_abs, mean_rel_error=float(error.mean()) / scale,
                        p99_rel_error=p99_abs / scale, cosine_similarity=cosine, top5_agreement=top5,
                        reference_shape=tuple(reference.shape), failed_checks=failed, degenerate=degenerate)


# Outputs whose largest magnitude is below this are "near zero": an untrained or collapsed model (a freshly
# built zoo model's logits are ~1e-27), where reduced precisions underflow and a check proves little.
NEAR_ZERO = 1e-6
# Values closer than this, relative to the output's largest magnitude, count as the same: what the fp32
# preset cannot tell apart.
INDISTINCT = 1e-4


def degenerate_reason(reference: np.ndarray) -> str | None:
    """Why ``reference`` ([N, ...], axis 0 the sample) cannot tell a right artifact from a wrong one: all
    near zero, constant, or the same for every input (a model that ignores its input); None when it can,
    or when it is not finite (reported as such elsewhere)."""
    values = reference.astype(np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        return None
    scale = float(np.abs(values).max())
    if scale < NEAR_ZERO:
        return f"all near zero (largest magnitude {scale:.3g})"
    if float(values.max() - values.min()) <= INDISTINCT * scale:
        return f"constant ({float(values.flat[0]):.4g} everywhere)"
    if len(values) > 1 and float(np.abs(values - values[:1]).max()) <= INDISTINCT * scale:
        return "the same for every input"
    return None


def _topk_agreement(reference: np.ndarray, candidate: np.ndarray, k: int) -> float | None:
    """reference, candidate: [N, classes]. None when there are no more than k classes (always agrees)."""
    if reference.shape[1] <= k:
        return None
    top = [np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1) for scores in (reference, candidate)]
    return float(np.mean(np.all(top[0] == top[1], axis=1)))


def _lowest_cosine(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """The lowest per-sample cosine similarity (axis 0 is the sample); two zero vectors count as equal."""
    if reference.ndim == 0 or reference.shape[0] == 0:
        return None
    ref = reference.reshape(reference.shape[0], -1).astype(np.float64)
    cand = candidate.reshape(candidate.shape[0], -1).astype(np.float64)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    both_zero = (np.linalg.norm(ref, axis=1) == 0) & (np.linalg.norm(cand, axis=1) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.where(both_zero, 1.0, np.sum(ref * cand, axis=1) / norms)
    cosine = np.nan_to_num(cosine, nan=0.0)  # one zero vector (or non-finite values): nothing in common
    return float(cosine.min())


def degenerate_sentence(degenerate: dict[str, str]) -> str:
    """degenerate: {output name: reason}, as ParityReport.degenerate."""
    reasons = "; ".join(f"{name} {reason}" for name, reason in degenerate.items())
    return f"PyTorch's outputs cannot tell a right artifact from a wrong one, so passing parity proves nothing: {reasons}"


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _worst(results: list[OutputParity]) -> OutputParity:
    """Merge one output's comparisons over several input sizes: the one closest to (or past) its limit,
    passed only if all passed."""
    worst = max(results, key=lambda r: r.max_abs_error / max(r.limit, 1e-30))
    agreements = [r.top1_agreement for r in results if r.top1_agreement is not None]

    def lowest(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return min(known) if known else None

    def highest(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    mean_rel = [r.mean_rel_error for r in results if r.mean_rel_error is not None]
    return replace(
        worst,
        mean_abs_error=float(np.mean([r.mean_abs_error for r in results])),
        top1_agreement=min(agreements) if agreements else None,
        passed=all(r.passed for r in results),
        p99_abs_error=highest([r.p99_abs_error for r in results]),
        mean_rel_error=float(np.mean(mean_rel)) if mean_rel else None,
        p99_rel_error=highest([r.p99_rel_error for r in results]),
        cosine_similarity=lowest([r.cosine_similarity for r in results]),
        top5_agreement=lowest([r.top5_agreement for r in results]),
        failed_checks=tuple(dict.fromkeys(check for r in results for check in r.failed_checks)),
        degenerate=next((r.degenerate for r in results if r.degenerate), None),
    )


def check_parity(
    reference: Runner,
    candidate: Runner,
    sample_sets: list[np.ndarray],
    *,
    batch_sizes: tuple[int, ...] = (1,),
    tolerance: Tolerance = FP32.tolerance,
) -> ParityReport:
    """Run both runners on each sample set ([N, C, H, W]; one set per input size), split into each batch
    size, and compare every output."""
    per_output: dict[str, list[OutputParity]] = {}
    input_name = candidate.input_names[0]
    for samples in sample_sets:
        collected: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        for batch_size in batch_sizes:
            for batch in batches(samples, batch_size):
                expected = reference.infer({reference.input_names[0]: batch})
                actual = candidate.infer({input_name: batch})
                for ref_name, cand_name in zip(reference.output_names, candidate.output_names):
                    refs, cands = collected.setdefault(cand_name, ([], []))
                    refs.append(expected[ref_name])
                    cands.append(actual[cand_name])
        for name, (refs, cands) in collected.items():
            per_output.setdefault(name, []).append(
                compare_output(name, np.concatenate(refs), np.concatenate(cands), tolerance)
            )
    outputs = tuple(_worst(results) for results in per_output.values())
    input_shapes = tuple(tuple(samples.shape[1:]) for samples in sample_sets)
    return ParityReport(candidate.name, tolerance, sum(len(s) for s in sample_sets), tuple(batch_sizes),
                        input_shapes, outputs)
