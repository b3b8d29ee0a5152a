"""verify's results as data: per runtime the output comparison and, when run, the layer localisation;
saved as JSON and JUnit XML, rendered by the CLI."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import ParityError
from ..localize import Localization
from ..manifest import stamped
from ..parity import OutputParity, ParityReport, Tolerance


@dataclass(frozen=True)
class RuntimeVerification:
    runtime: str
    parity: ParityReport
    layers: Localization | None  # None when the outputs passed and layers were not asked for
    seconds: float

    @property
    def passed(self) -> bool:
        return self.parity.passed

    def failure(self) -> str | None:
        """One sentence on the worst failing output and the layer where it starts; None when passed."""
        failing = [out for out in self.parity.outputs if not out.passed]
        if not failing:
            return None
        worst = max(failing, key=lambda o: o.max_abs_error / max(o.limit, 1e-300))
        first = self.layers.first_divergent if self.layers else None
        return f"{self.runtime}: {describe_failure(worst, self.parity.tolerance)}" + (f"; first divergent layer {first.path}" if first else "")


def describe_failure(out: OutputParity, tolerance: Tolerance) -> str:
    if "shape" in out.failed_checks or (out.reference_shape is not None
                                        and tuple(out.reference_shape) != tuple(out.shape)):
        return f"{out.name} has shape {list(out.shape)}, PyTorch gives {list(out.reference_shape)}"
    ratio = out.max_abs_error / out.limit if out.limit else math.inf
    shown = out.top1_agreement is None or "top1" in out.failed_checks
    agree = "" if shown else f", top-1 agreement {out.top1_agreement:.0%}"
    problems = out.problems(tolerance)
    if "error" in out.failed_checks or not problems:
        problems.insert(0, f"max abs error {out.max_abs_error:.3g} exceeds the limit {out.limit:.3g} ({ratio:.1f}x)")
    return f"{out.name} {', '.join(problems)}, max rel {out.max_rel_error:.3g}{agree}"


@dataclass(frozen=True)
class VerifyReport:
    """samples: how many inputs of each kind; notes: what is worth knowing but fails nothing."""

    artifact: str
    model_file: str
    checkpoint: str | None
    reference: str
    tolerance: Tolerance
    batch_sizes: tuple[int, ...]
    input_size: tuple[int, int]
    samples: dict[str, int]
    runtimes: tuple[RuntimeVerification, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return bool(self.runtimes) and all(r.passed for r in self.runtimes)

    def failures(self) -> list[str]:
        return [sentence for r in self.runtimes if (sentence := r.failure())]

    def to_dict(self) -> dict:
        runtimes = [{"runtime": r.runtime, "passed": r.passed, "seconds": r.seconds, "parity": r.parity.to_dict(),
                     "layers": r.layers.to_dict() if r.layers else None} for r in self.runtimes]
        return stamped(_finite(asdict(self) | {"runtimes": runtimes, "passed": self.passed, "failures": self.failures()}))

    def raise_for_failure(self) -> None:
        """ParityError (exit code 1) naming each failing runtime, output and first divergent layer."""
        if not self.passed:
            raise ParityError(f"parity check failed on {'; '.join(self.failures())}",
                              hint="the artifact does not compute what the checkpoint does; --layers lists every "
                                   "layer's error, and converting again rebuilds the artifact")


def _finite(value):
    """JSON has no inf or NaN: a failed comparison's infinite error becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
