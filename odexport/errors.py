"""The errors odexport raises on purpose.

Each carries a one-line message (what went wrong) and a hint (what to do). The CLI prints both and exits
with the error's ``exit_code``; library users catch :class:`OdexportError`.
"""

from __future__ import annotations


class OdexportError(Exception):
    """Base class: a failure with a user-facing message and a hint."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(OdexportError):
    """A file, option or model the user gave cannot be used as it is."""


class CheckpointError(InputError):
    """A checkpoint is missing, unreadable, truncated, or does not match an architecture."""


class UnknownArchitectureError(InputError):
    """No architecture in the zoo matches the weights (or the name given)."""


class OutputError(InputError):
    """The output location cannot be written."""


class MissingExtraError(InputError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""


class ExportError(OdexportError):
    """Tracing, lowering or converting the model failed; this is a bug or an unsupported layer."""

    exit_code = 3


class ParityError(OdexportError):
    """The artifact's outputs differ from PyTorch beyond the tolerance."""

    exit_code = 1
