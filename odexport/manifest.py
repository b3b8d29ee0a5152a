"""The manifest written beside every artifact: where it came from, what it expects, how it was checked."""

from __future__ import annotations

import platform
from importlib import metadata


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    packages = ("odexport", "torch", "onnx", "onnxruntime", "openvino")
    return {"python": platform.python_version()} | {name: _version(name) for name in packages}


MANIFEST_FORMAT = 2
# Beside "format" in every manifest: what tells an odexport artifact from a user's own manifest.json.
MANIFEST_PRODUCER = "odexport"
