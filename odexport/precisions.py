"""The numeric precisions an artifact can be written in, by name.

`convert --precision`, the targets (which precisions each writes), and `verify --precision` (through the
tolerance preset of the same name in odexport.parity.TOLERANCES) all read this one registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Precision:
    """quantized: the artifact needs calibration data (post-training quantization)."""

    name: str
    summary: str
    quantized: bool = False


_PRECISIONS: dict[str, Precision] = {}


def register_precision(precision: Precision) -> Precision:
    _PRECISIONS[precision.name] = precision
    return precision


def list_precisions() -> list[str]:
    return list(_PRECISIONS)


def get_precision(name: str) -> Precision:
    try:
        return _PRECISIONS[name]
    except KeyError:
        raise InputError(f"unknown precision {name!r}", hint=f"choose one of: {', '.join(_PRECISIONS)}") from None


FP32 = register_precision(Precision("fp32", "32-bit float weights and arithmetic"))
register_precision(Precision("fp16", "16-bit float weights (computed in fp32 where the runtime has no fp16 kernels)"))
register_precision(Precision("bf16", "bfloat16 arithmetic (CPUs with AVX512-BF16 or AMX)"))
register_precision(Precision("int8", "8-bit integer convolutions, post-training quantized on calibration images",
                             quantized=True))
