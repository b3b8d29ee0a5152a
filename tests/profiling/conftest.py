"""TinyODNet artifacts (32x32, dynamic batch) converted once per session, and a short measuring budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from odexport.conversion import convert_model
from strategies import tiny_od_net

SIZE = 32
# Enough calls for statistics; no test reads a time.
QUICK = {"iterations": 6, "seconds": 0.2, "warmup": 1}


@pytest.fixture(scope="session")
def tiny_model():
    return tiny_od_net()


@pytest.fixture(scope="session")
def tiny_profiled(tmp_path_factory, tiny_model) -> dict[str, Path]:
    """{"onnx": dir, "openvino": dir} of TinyODNet (decomposed, dynamic batch)."""
    out = tmp_path_factory.mktemp("tiny-profile")
    return {target: convert_model(tiny_model, target=target, output=out / target, imgsz=SIZE, verify=False).output_dir
            for target in ("onnx", "openvino")}
