"""Artifacts converted once per session (without convert's own parity check: verify is what is tested);
tests copy them before damaging them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from odexport.conversion import convert_checkpoint

SIZE = 32  # the size tiny_artifacts (tests/conftest.py) were converted at


@pytest.fixture(scope="session")
def resnet(official_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, ONNX artifact directory) of od_resnet18 with 10 classes, dynamic batch, 32x32."""
    checkpoint = official_checkpoint("od_resnet18")
    out = tmp_path_factory.mktemp("resnet") / "onnx"
    convert_checkpoint(checkpoint, target="onnx", output=out, imgsz=SIZE, verify=False, lowering="decomposed")
    return checkpoint, out


@pytest.fixture
def copy_artifact(tmp_path):
    def copy(directory: Path) -> Path:
        return Path(shutil.copytree(directory, tmp_path / directory.name))

    return copy
