"""Write an output directory all at once: build in a staging directory beside it, then move into place.

A failure at any step (export, conversion, parity) leaves the output location as it was. What is at the
output path is replaced only when it is provably an artifact odexport wrote (see :func:`foreign_reason`)
or an empty directory; anything else is the user's and is never touched. A run that is killed leaves its
staging directory (claimed, see odexport.scratch) for the next run to remove. A run interrupted with
Ctrl-C never commits, even when a native library (onnxsim's constant folding calls back into Python)
swallowed the KeyboardInterrupt and let the conversion carry on.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import stat
import tempfile
import threading
from pathlib import Path

from .console import Reporter, SilentReporter
from .errors import OutputError
from .manifest import MANIFEST_NAME as MANIFEST, MANIFEST_PRODUCER
from .scratch import claim, dead_owner, process_tag, remove_abandoned

# Inside the staging directory; the claim file sits beside it so it never reaches the output.
STAGED_ARTIFACT = "artifact"


def foreign_reason(directory: Path) -> str | None:
    """Why the non-empty ``directory`` is not provably an odexport artifact; None when it is one.

    It is one when its manifest.json is odexport's (a JSON object with "producer": "odexport" and an
    integer "format") and it holds nothing but the files that manifest lists, and their folders.
    """
    manifest_path = directory / MANIFEST
    if manifest_path.is_symlink() or not manifest_path.is_file():
        return f"holds no odexport {MANIFEST}"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return f"holds a {MANIFEST} that is not JSON"
    if (not isinstance(manifest, dict) or manifest.get("producer") != MANIFEST_PRODUCER
            or type(manifest.get("format")) is not int):
        return f'holds a {MANIFEST} that odexport did not write (no "producer": "{MANIFEST_PRODUCER}")'
    listed = manifest.get("files")
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        return f"holds a {MANIFEST} without a list of files"
    files = {Path(name) for name in listed} | {Path(MANIFEST)}
    folders = {parent for name in files for parent in name.parents} - {Path(".")}
    for entry in sorted(directory.rglob("*")):
        relative = entry.relative_to(directory)
        if entry.is_symlink():
            return f"holds a symbolic link {relative}, which odexport never writes"
        expected = folders if entry.is_dir() else files
        if relative not in expected or not (entry.is_dir() or entry.is_file()):
            return f"holds {relative}, which its {MANIFEST} does not list"
    return None


def check_replaceable(output: Path) -> None:
    """OutputError unless ``output`` is free, an empty directory, or an artifact odexport wrote."""
    if not output.is_symlink() and not output.exists():
        return
    hint = "choose a new or empty directory with -o/--output; odexport replaces only a directory it wrote"
    if output.is_symlink():
        raise OutputError(f"output {output} is a symbolic link; it was left untouched", hint=hint)
    if not output.is_dir():
        raise OutputError(f"output {output} exists and is not a directory; it was left untouched", hint=hint)
    try:
        reason = None if not any(output.iterdir()) else foreign_reason(output)
    except OSError as error:
        reason = f"cannot be read ({error.strerror or error})"
    if reason:
        raise OutputError(f"output directory {output} {reason}, so it is not an odexport artifact; it was left "
                          "untouched", hint=hint)


class StagedDirectory:
    """``with StagedDirectory(output) as staged: ...; staged.commit()``

    Files go to ``staged.path``; ``commit()`` replaces ``output`` with it. Leaving the block without
    committing removes everything written. Stale staging directories of killed runs writing the same
    output are removed first (reported through ``reporter``).
    """

    def __init__(self, output: Path, reporter: Reporter | None = None) -> None:
        self.output = Path(output).absolute()
        self.committed = False
        self._interrupts = _InterruptRecord()
        check_replaceable(self.output)
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            _clean_after_killed_runs(self.output, reporter or SilentReporter())
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.output.name}.partial-{os.getpid()}-",
                                                 dir=self.output.parent))
            claim(self.staging)
            self.path = self.staging / STAGED_ARTIFACT
            self.path.mkdir()  # with the mode the umask gives, as the output will have
        except OSError as error:
            raise OutputError(
                f"cannot write to {self.output.parent}: {error.strerror or error}",
                hint="choose a writable location with -o/--output",
            ) from None

    def __enter__(self) -> "StagedDirectory":
        self._interrupts.install()
        return self

    def __exit__(self, *exc_info) -> None:
        self._interrupts.uninstall()
        shutil.rmtree(self.staging, ignore_errors=True)

    def commit(self) -> Path:
        """Move the staged files into place, replacing an earlier artifact (or empty directory) there.

        The output path is checked again here: whatever appeared there while the model was converted is
        the user's unless it is provably odexport's. A replaced artifact's mode is not kept: the new
        directory has the umask's (artifacts of earlier versions were 0700)."""
        if self._interrupts.interrupted:
            raise KeyboardInterrupt
        check_replaceable(self.output)
        previous = None
        if self.output.is_dir() and any(self.output.iterdir()):
            previous = self._set_aside_previous()
        elif self.output.is_dir():  # an empty directory the user made for it keeps the mode they gave it
            os.chmod(self.path, stat.S_IMODE(self.output.stat().st_mode))
        try:
            os.rename(self.path, self.output)  # fails rather than replace a directory that is not empty
        except OSError as error:
            if previous is not None and not self.output.exists():
                os.rename(previous, self.output)
            raise OutputError(f"cannot move the artifact to {self.output}: {error.strerror or error}; "
                              "what is there was left untouched",
                              hint="choose a new or empty directory with -o/--output") from None
        self.committed = True
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
        return self.output

    def _set_aside_previous(self) -> Path:
        """Move the earlier artifact aside, named so a later run knows whose it is if this one dies."""
        previous = self.output.with_name(f".{self.output.name}.previous-{process_tag()}-{secrets.token_hex(4)}")
        os.rename(self.output, previous)
        reason = foreign_reason(previous)  # something else may have taken its place since the check
        if reason:
            os.rename(previous, self.output)
            raise OutputError(f"output directory {self.output} changed while converting and {reason}; it was "
                              "left untouched", hint="choose a new or empty directory with -o/--output")
        return previous


class _InterruptRecord:
    """Notes every SIGINT while installed, then lets the previous handler act on it as before."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous = None

    def install(self) -> None:
        # Handlers can only be set from the main thread; elsewhere (an API caller's worker thread) the
        # caller's own interrupt handling stays as it is, as it does when the caller ignores SIGINT.
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, None)):
            self._previous = signal.signal(signal.SIGINT, self._record)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _record(self, signum, frame) -> None:
        self.interrupted = True
        if callable(self._previous):
            self._previous(signum, frame)
        else:  # SIG_DFL would end the process on the spot; as Python's handler, so the staging is removed
            raise KeyboardInterrupt


def _clean_after_killed_runs(output: Path, reporter: Reporter) -> None:
    """Remove the staging directories dead runs left beside ``output``; put back an earlier artifact a run
    killed in the middle of replacing it had set aside."""
    partial, previous = f".{output.name}.partial-", f".{output.name}.previous-"
    siblings = sorted(output.parent.iterdir())
    remove_abandoned([path for path in siblings if path.name.startswith(partial)], "partial output", reporter)
    for path in siblings:
        if not path.name.startswith(previous) or path.is_symlink() or not path.is_dir():
            continue
        pid = dead_owner(path.name[len(previous):].rpartition("-")[0])
        if pid is None or path.stat().st_uid != os.getuid() or foreign_reason(path):
            continue
        if not output.exists() and not output.is_symlink():
            os.rename(path, output)
            reporter.info(f"  - restored {output} from {path.name}, set aside by an interrupted run (pid {pid})")
        else:
            shutil.rmtree(path, ignore_errors=True)
            reporter.info(f"  - removed stale earlier output {path} left by an interrupted run (pid {pid})")

