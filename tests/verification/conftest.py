"""Artifacts converted once per session (without convert's own parity check: verify is what is tested);
tests copy them before damaging them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from odexport.conversion import convert_checkpoint, convert_model
from strategies import tiny_od_net

SIZE = 32


@pytest.fixture(scope="session")
def tiny_model():
    return tiny_od_net()


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory, tiny_model) -> dict[str, Path]:
    """{"onnx": dir, "openvino": dir} of TinyODNet with a dynamic batch at 32x32."""
    out = tmp_path_factory.mktemp("tiny")
    return {target: convert_model(tiny_model, target=target, output=out / target, imgsz=SIZE, verify=False).output_dir
            for target in ("onnx", "openvino")}


@pytest.fixture(scope="session")
def resnet(official_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, ONNX artifact directory) of od_resnet18 with 10 classes, dynamic batch, 32x32."""
    checkpoint = official_checkpoint("od_resnet18")
    out = tmp_path_factory.mktemp("resnet") / "onnx"
    convert_checkpoint(checkpoint, target="onnx", output=out, imgsz=SIZE, verify=False)
    return checkpoint, out


@pytest.fixture
def copy_artifact(tmp_path):
    def copy(directory: Path) -> Path:
        return Path(shutil.copytree(directory, tmp_path / directory.name))

    return copy
