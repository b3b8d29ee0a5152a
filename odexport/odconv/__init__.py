"""The ODConv math, in one place: a folded description of a layer and the formula over it."""

from .formula import (
    AttentionBranch,
    Attentions,
    add_kernel_bias,
    aggregate_kernel_bias,
    aggregate_weights,
    apply_output_affine,
    reference_forward,
    scale_channels,
)
from .folding import (
    drop_identity_attentions,
    fold_batchnorm,
    fold_following_batchnorm,
    fold_temperature,
    merge_heads,
)
from .official import describe_official
from .spec import ODConvSpec

__all__ = [
    "AttentionBranch",
    "Attentions",
    "ODConvSpec",
    "add_kernel_bias",
    "aggregate_kernel_bias",
    "aggregate_weights",
    "apply_output_affine",
    "describe_official",
    "drop_identity_attentions",
    "fold_batchnorm",
    "fold_following_batchnorm",
    "fold_temperature",
    "merge_heads",
    "reference_forward",
    "scale_channels",
]
