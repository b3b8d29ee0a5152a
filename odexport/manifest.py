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

# Version of the layout of odexport's JSON reports (verify --json, profile --json, inspect --json): raised
# when a field is renamed or removed, so a reader can tell an old file from a new one.
REPORT_SCHEMA_VERSION = 1


def stamped(report: dict) -> dict:
    """``report`` with the schema version and the package versions that produced it, first."""
    return {"schema_version": REPORT_SCHEMA_VERSION, "versions": versions()} | report
