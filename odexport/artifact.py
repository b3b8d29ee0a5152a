"""Write an output directory all at once: build in a staging directory beside it, then move into place.

A failure at any step (export, conversion, parity) leaves the output location as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import OutputError

MANIFEST = "manifest.json"


def _check_destination(output: Path) -> None:
    if output.is_file() or (output.exists() and not output.is_dir()):
        raise OutputError(f"output {output} exists and is not a directory",
                          hint="choose another path with -o/--output")
    if output.is_dir() and any(output.iterdir()) and not (output / MANIFEST).is_file():
        raise OutputError(
            f"output directory {output} is not empty and holds no odexport artifact",
            hint="choose an empty or new directory with -o/--output; odexport only replaces its own outputs",
        )


class StagedDirectory:
    """``with StagedDirectory(output) as staged: ...; staged.commit()``

    Files go to ``staged.path``; ``commit()`` replaces ``output`` with it. Leaving the block without
    committing removes everything written.
    """

    def __init__(self, output: Path) -> None:
        self.output = Path(output).absolute()
        self.committed = False
        _check_destination(self.output)
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.output.name}.partial-", dir=self.output.parent))
        except OSError as error:
            raise OutputError(
                f"cannot write to {self.output.parent}: {error.strerror or error}",
                hint="choose a writable location with -o/--output",
            ) from None

    def __enter__(self) -> "StagedDirectory":
        return self

    def __exit__(self, *exc_info) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> Path:
        """Move the staged files into place, replacing an earlier artifact at the same path."""
        _check_destination(self.output)
        previous = None
        if self.output.exists():
            previous = self.output.with_name(f".{self.output.name}.previous-{os.getpid()}")
            os.replace(self.output, previous)
        os.replace(self.path, self.output)
        self.committed = True
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
        return self.output


def write_manifest(directory: Path, manifest: dict) -> Path:
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path
