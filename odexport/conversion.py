"""convert with keyword options, for Python callers that convert with keywords (profile's on-the-fly
conversion, benchmarks, tests): each call checks its keywords once into a ConvertOptions
(odexport.pipeline.convert_options, which names every keyword) and runs odexport.pipeline."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .console import Reporter
from .pipeline import DEFAULT_LOWERING, ConversionResult, convert_options
from .pipeline import convert_checkpoint as pipeline_checkpoint
from .pipeline import convert_model as pipeline_model

__all__ = ["DEFAULT_LOWERING", "ConversionResult", "convert_checkpoint", "convert_model"]


def convert_checkpoint(checkpoint: str | Path, *, reporter: Reporter | None = None, **options) -> ConversionResult:
    """odexport.pipeline.convert_checkpoint with ``options`` as convert_options' keywords."""
    return pipeline_checkpoint(Path(checkpoint), convert_options(**options), reporter=reporter)


def convert_model(model: nn.Module, *, output: str | Path, example_input: torch.Tensor | None = None,
                  reporter: Reporter | None = None, source: dict | None = None, model_info: dict | None = None,
                  **options) -> ConversionResult:
    """odexport.pipeline.convert_model into ``output``, with ``options`` as convert_options' keywords."""
    return pipeline_model(model, convert_options(output=output, **options), example_input=example_input,
                          reporter=reporter, source=source, model_info=model_info)
