"""Report files (--json, --junit, --plot) are checked before the work that fills them, so a typo in a
path costs a second rather than a verification or a profile thrown away at the end."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .errors import OutputError


def check_writable_file(path: str | Path, option: str) -> Path:
    """OutputError naming ``option`` unless ``path`` can be written as a file; nothing is left behind
    (missing parent folders are created only when the report is written)."""
    path = Path(path)
    if path.is_dir():
        _refuse(path, option, "is a directory")
    if path.exists():
        try:
            with path.open("ab"):  # appending nothing leaves the file as it was
                pass
        except OSError as error:
            _refuse(path, option, error.strerror or str(error))
        return path
    ancestor = next(parent for parent in path.absolute().parents if parent.exists())
    if not ancestor.is_dir():
        _refuse(path, option, f"{ancestor} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=ancestor):  # permission bits do not stop root: try a real file
            pass
    except OSError as error:
        _refuse(path, option, f"{ancestor} is not writable ({error.strerror or error})")
    return path


def _refuse(path: Path, option: str, why: str) -> None:
    raise OutputError(f"{option} {path}: cannot write a file there: {why}",
                      hint=f"choose a writable {option} path")
