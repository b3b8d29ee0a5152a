"""Keyword arguments of the Python API renamed to the CLI's names: the old names keep working for a while,
with a DeprecationWarning saying the new one."""

from __future__ import annotations

import warnings
from typing import Any

from .errors import InputError


def renamed(old: str, old_value: Any, new: str, new_value: Any, new_default: Any = None) -> Any:
    """The value to use for ``new``: ``old_value`` (with a DeprecationWarning) when the caller used the old
    name, else ``new_value``. Both given is an InputError: which one was meant is unclear."""
    if old_value is None:
        return new_value
    if new_value is not None and new_value != new_default:
        raise InputError(f"both {old}= and {new}= were given", hint=f"pass {new}= only ({old}= is its old name)")
    warnings.warn(f"{old}= is now {new}= (the same name as the CLI's --{new.replace('_', '-')})",
                  DeprecationWarning, stacklevel=3)
    return old_value
