"""Directories odexport writes while it works, and how a later run recognises the ones a killed run left.

A run that is killed (SIGKILL, power loss) cannot clean up after itself, so every working directory
carries an owner record: a file naming odexport, the host, the process id and when that process started.
A later run removes such a directory only when the record is odexport's, the directory belongs to the
same user and host, and the recorded process is gone; a live run's directories are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .console import Reporter, SilentReporter
from .manifest import MANIFEST_PRODUCER as PRODUCER

OWNER_FILE = ".odexport-owner"
# Every odexport working directory in the system's temporary directory starts with this.
TEMP_PREFIX = "odexport-"


def _process_start(pid: int) -> str | None:
    """When the process started (clock ticks since boot, Linux); None where /proc does not say.

    Tells a process apart from a later one that was given the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the command name before ")" may hold spaces


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    now = _process_start(pid)
    return started is None or now is None or now == started


def process_tag() -> str:
    """"<pid>-<start>" of this process, for a name that must say which run made it."""
    return f"{os.getpid()}-{_process_start(os.getpid()) or 0}"


def dead_owner(tag: str) -> int | None:
    """The pid in a :func:`process_tag` when that process is gone; None when alive or not a tag."""
    pid, _, started = tag.partition("-")
    if not pid.isdigit() or not started.isdigit() or int(pid) <= 0:
        return None
    return None if _alive(int(pid), None if started == "0" else started) else int(pid)


def claim(directory: Path) -> None:
    """Record this process as the owner of ``directory`` (a directory it has just created)."""
    record = {"producer": PRODUCER, "host": socket.gethostname(), "pid": os.getpid(),
              "started": _process_start(os.getpid())}
    (directory / OWNER_FILE).write_text(json.dumps(record) + "\n")


def abandoned_by(directory: Path) -> int | None:
    """The pid of the dead odexport run that left ``directory``; None unless that is provable."""
    try:
        if directory.is_symlink() or not directory.is_dir() or directory.stat().st_uid != os.getuid():
            return None
        record = json.loads((directory / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("producer") != PRODUCER:
        return None
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return None
    return None if _alive(pid, record.get("started")) else pid


def remove_abandoned(candidates: list[Path], what: str, reporter: Reporter) -> None:
    """Remove each candidate a dead odexport run provably left, and say so."""
    for path in candidates:
        pid = abandoned_by(path)
        if pid is None:
            continue
        shutil.rmtree(path, ignore_errors=True)
        reporter.info(f"  - removed stale {what} {path} left by an interrupted run (pid {pid})")


def sweep_temporary(reporter: Reporter | None = None) -> None:
    """Remove the working directories killed odexport runs left in the system's temporary directory."""
    root = Path(tempfile.gettempdir())
    try:
        candidates = sorted(root.glob(f"{TEMP_PREFIX}*"))
    except OSError:
        return
    remove_abandoned(candidates, "working directory", reporter or SilentReporter())


@contextmanager
def scratch_directory(kind: str, reporter: Reporter | None = None) -> Iterator[Path]:
    """``with scratch_directory("verify") as work: ...`` a claimed directory in the system's temporary
    directory, removed on leaving; stale ones of killed runs are removed first."""
    sweep_temporary(reporter)
    path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{kind}-{os.getpid()}-"))
    try:
        claim(path)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
