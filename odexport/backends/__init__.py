"""Everything odexport knows about a runtime, one module (or small package) per runtime, found through one
registry: ``onnxruntime``, ``openvino``, ``onnx_reference`` (the ONNX reference evaluator, an exact slow
oracle) and ``torch`` (the PyTorch reference every artifact is checked against).

A backend module registers its Backend (how verify and profile run a model file) and its convert Targets
(what convert writes for it); base.py holds what they share without importing any runtime.
"""

# Each module registers itself, in this order: the first backend reading a suffix is that file's default
# (ONNX Runtime for .onnx, OpenVINO for .xml), and listings follow it.
from . import onnxruntime  # noqa: F401, I001
from . import openvino  # noqa: F401
from . import onnx_reference  # noqa: F401
from ..outputs import flatten_outputs
from .base import FLAT, HINTS, MODEL_STEM, RUNS_ON_KEY, RunOptions, Runner, WriteRequest
from .registry import (
    ALL, Backend, Target, backends_reading, build_runner, choose_runtimes, get_backend, get_target, left_out_note,
    list_backends, list_targets, model_suffixes, register_backend, register_target, unregister_backend,
)

__all__ = [
    "ALL", "FLAT", "HINTS", "MODEL_STEM", "RUNS_ON_KEY", "Backend", "RunOptions", "Runner", "Target", "WriteRequest",
    "backends_reading", "build_runner", "choose_runtimes", "flatten_outputs", "get_backend", "get_target",
    "left_out_note", "list_backends", "list_targets", "model_suffixes", "register_backend", "register_target",
    "unregister_backend",
]
