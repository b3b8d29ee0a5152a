"""odexport: ODConv (and other dynamic-convolution) models to ONNX, ONNX Runtime and OpenVINO, with parity.

``odexport.convert``, ``odexport.verify`` and ``odexport.inspect`` are the Python API (odexport/api.py),
imported on first use so that ``import odexport`` stays light.
"""

from __future__ import annotations

_API = ("convert", "verify", "inspect")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'odexport' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
