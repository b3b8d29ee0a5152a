"""The verdict on convert's parity check: the artifact is written only when parity passed on PyTorch
outputs that can tell a right artifact from a wrong one; otherwise an error that says what to try."""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InputError, ParityError
from ..parity import ParityReport, degenerate_sentence
from ..rewrite import ODConvLayer


DEGENERATE_HINT = "convert trained weights, or pass --allow-degenerate to write the artifact anyway"


def judge_parity(parity: ParityReport, precision: str, output: Path, allow_degenerate: bool,
                 hint: str = "rerun with --no-verify to keep the artifact for inspection") -> list[str]:
    """Raise unless ``parity`` passed on a reference that can tell a right artifact from a wrong one; return
    notes (a degenerate reference that was allowed)."""
    if not parity.passed:
        if not all(math.isfinite(out.limit) for out in parity.outputs):
            raise InputError("PyTorch itself gives non-finite outputs (NaN or inf) for this model, so there is "
                             "nothing to compare against; nothing was written",
                             hint="check the checkpoint's weights and BatchNorm statistics")
        worst = max((out for out in parity.outputs if not out.passed),
                    key=lambda out: out.max_abs_error / max(out.limit, 1e-300))
        problems = worst.problems(parity.tolerance)
        if "error" in worst.failed_checks:
            problems.insert(0, f"max abs error {worst.max_abs_error:.3g} exceeds the {precision} limit "
                               f"{worst.limit:.3g} ({worst.max_abs_error / max(worst.limit, 1e-300):.1f}x)")
        raise ParityError(f"parity check failed on {parity.runtime}: {worst.name} {', '.join(problems)}; nothing "
                          f"was written to {output}",
                          hint=hint)
    if not parity.degenerate:
        return []
    if not allow_degenerate:
        raise InputError(f"{degenerate_sentence(parity.degenerate)}; nothing was written to {output}",
                         hint=DEGENERATE_HINT)
    return [f"{degenerate_sentence(parity.degenerate)} (allowed)"]


def parity_hint(layers: list[ODConvLayer]) -> str:
    """What to try after a parity failure. Every lowered layer's description was confirmed against the
    layer's own forward, so a wrong description is not the cause: another lowering can help only when
    some layer was lowered."""
    keep = "--no-verify keeps the artifact for inspection (odexport verify --layers compares every layer's output)"
    if not layers:
        return f"no dynamic convolution was lowered, so another --lowering cannot help; {keep}"
    return ("each dynamic convolution's description was checked against the layer's own forward before export, "
            f"so the difference arises in the lowering or the runtime: rerun with another --lowering; {keep}")
