"""Lowerings: registered strategies that write an ODConv layer in exportable operations."""

from . import decomposed  # noqa: F401  (registers itself)
from .registry import Lowering, get_lowering, list_lowerings, register_lowering

__all__ = ["Lowering", "get_lowering", "list_lowerings", "register_lowering"]
