"""Lowerings: registered strategies that write an ODConv layer in exportable operations."""

from . import custom_op, decomposed, depthwise_taps, dynamic_weight  # noqa: F401  (each registers itself)
from .registry import Lowering, get_lowering, list_lowerings, register_lowering

__all__ = ["Lowering", "get_lowering", "list_lowerings", "register_lowering"]
