"""The ONNX reference evaluator (``onnx.reference.ReferenceEvaluator``): every operator written from the
ONNX specification in numpy, custom-op ODConv2d nodes expanded into their function bodies.
An exact, slow oracle that depends on neither optimising runtime: `verify --runtime reference` checks an
.onnx artifact without ONNX Runtime's or OpenVINO's kernels, fusions or precision choices.

Slow (seconds per image for a full-size model), so "all" leaves it out: it runs when named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from ..errors import InputError
from .base import Runner
from .custom_op import has_odconv_functions, inline_odconv_functions
from .graph import onnx_io, onnx_metadata, read_onnx_graph, with_outputs
from .registry import Backend, register_backend

NAME = "reference"


class ReferenceRunner:
    """An ONNX file in onnx's reference evaluator."""

    name = NAME

    def __init__(self, path: Path) -> None:
        model = onnx.load(str(path))
        if has_odconv_functions(model):
            # The evaluator runs a function node only with every input spelled out and ignores attribute
            # defaults; the inlined bodies say the same in standard operators.
            model = inline_odconv_functions(model)
        try:
            self.evaluator = ReferenceEvaluator(model)
        except Exception as error:  # an operator or domain the evaluator does not implement
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise InputError(f"the ONNX reference evaluator cannot run {path.name}: {first[:200]}",
                             hint="it runs standard ONNX operators and model-local functions only; verify "
                                  "this file with --runtime onnxruntime or openvino") from error
        self.input_names = tuple(self.evaluator.input_names)
        self.output_names = tuple(self.evaluator.output_names)

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.evaluator.run(list(self.output_names), {name: feed[name] for name in self.input_names})
        return dict(zip(self.output_names, results))


def _exposing(model_file: Path, tensors: list[str], workdir: Path) -> Runner:
    return ReferenceRunner(with_outputs(model_file, tensors, workdir))


register_backend(Backend(NAME, "the ONNX reference evaluator (exact, slow)", (".onnx",), ReferenceRunner,
                         graph=read_onnx_graph, exposing=_exposing, read_io=onnx_io,
                         read_metadata=onnx_metadata, in_all=False))
