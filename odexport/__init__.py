"""odexport: ODConv (and other dynamic-convolution) models to ONNX, ONNX Runtime and OpenVINO, with parity.

``odexport.convert``, ``odexport.verify`` and ``odexport.inspect`` (odexport/api.py) and
``odexport.profile`` (odexport/profiling) are the Python API, imported on first use so that
``import odexport`` stays light.
"""

from __future__ import annotations

import importlib
from importlib import metadata

try:
    __version__ = metadata.version(__name__)
except metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

# Public name -> the submodule that defines it.
_API = {"convert": "api", "verify": "api", "inspect": "api", "profile": "profiling"}


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'odexport' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
