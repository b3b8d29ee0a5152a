"""The ODConv math, in one place: a folded description of a layer and the formula over it."""

from .formula import AttentionBranch, Attentions, aggregate_weights, apply_output_affine, reference_forward
from .spec import ODConvSpec, describe_official, fold_batchnorm

__all__ = [
    "AttentionBranch",
    "Attentions",
    "ODConvSpec",
    "aggregate_weights",
    "apply_output_affine",
    "describe_official",
    "fold_batchnorm",
    "reference_forward",
]
