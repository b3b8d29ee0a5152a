"""The generic path: a dynamic convolution that no adapter describes, exported exactly with a dynamic batch.

Every implementation we found computes a kernel per sample and folds the batch into convolution groups
(``x.reshape(1, B * C, H, W)``, ``conv2d(..., groups=g * B)``, reshape back), so a trace keeps the
example's batch in the group count. The generic path runs the layer as it is, its attention math
traced op for op, and only rewrites each batch-folding convolution as a per-sample convolution whose
graph does not depend on B (conv.py). No lowering, BatchNorm folding or quantization of its kernels
applies to such a layer. Which calls fold the batch, and whether the rewritten layer still computes
what the original did, is decided by behaviour (layer.py, path.py); a layer that fails is refused.
"""

from .conv import batched_conv2d
from .layer import GenericDynamicConv
from .path import RELATIVE_TOLERANCE, GenericLayer, generic_form, model_fails, probe_generic_path, take_generic_path

__all__ = ["RELATIVE_TOLERANCE", "GenericDynamicConv", "GenericLayer", "batched_conv2d", "generic_form",
           "model_fails", "probe_generic_path", "take_generic_path"]
