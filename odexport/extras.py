"""Optional dependencies, installed as extras (pyproject.toml): most conversions never use them, so a
plain install leaves them out, and the feature that needs one says in one line how to get it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from .errors import MissingExtraError


@dataclass(frozen=True)
class Extra:
    """extra: the name in ``pip install 'odexport[<extra>]'``; feature: what needs it; package: its
    distribution name, as a user would recognise it."""

    extra: str
    feature: str
    package: str


# Importable module -> the extra that installs it.
EXTRAS = {
    "nncf": Extra("int8", "int8 for OpenVINO", "NNCF"),
    "matplotlib": Extra("plot", "--plot", "matplotlib"),
}


def require(module: str) -> ModuleType:
    """Import ``module`` (a key of EXTRAS); MissingExtraError naming the extra when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS[module]
        raise MissingExtraError(f"{extra.feature} needs {extra.package}: pip install 'odexport[{extra.extra}]'") from None
