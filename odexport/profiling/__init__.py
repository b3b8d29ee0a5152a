"""Profiling: latency, throughput, compile time, memory and per-layer times of exported models, and the
side-by-side comparison of lowerings against PyTorch, the naive export and the static twin."""

from .comparison import CompareReport, CompareRow, compare, compare_models
from .layers import ATTENTION, CATEGORIES, CONVOLUTION, OTHER, LayerBreakdown, LayerTime
from .measure import Budget
from .profile import DEFAULT_THREADS, offered_precisions, profile
from .result import ProfileReport, RunProfile
from .stats import LatencyStats

__all__ = [
    "ATTENTION", "CATEGORIES", "CONVOLUTION", "DEFAULT_THREADS", "OTHER", "Budget",
    "CompareReport", "CompareRow", "LatencyStats", "LayerBreakdown", "LayerTime", "ProfileReport", "RunProfile",
    "compare", "compare_models", "offered_precisions", "profile",
]
