"""Stage lines for long work ("ONNX: exporting ...", "ONNX: done in 1.2s, ..."), kept apart from results.

The library reports through a Reporter; the CLI passes one that prints to stderr, library callers get
silence unless they pass one.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from typing import Callable, ContextManager, Iterator, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Reporter(Protocol):
    def stage(self, name: str, action: str) -> "StageContext": ...

    def info(self, message: str) -> None: ...

    def progress(self, description: str, total: int) -> "ContextManager[Callable[[], None]]":
        """``with reporter.progress("calibrating", n) as advance: ... advance() ...``"""
        ...


class StageContext(Protocol):
    def __enter__(self) -> "Stage": ...

    def __exit__(self, *exc_info) -> None: ...


class Stage:
    """What a stage says when it finishes."""

    def __init__(self) -> None:
        self.result = ""


class SilentReporter:
    @contextmanager
    def stage(self, name: str, action: str) -> Iterator[Stage]:
        yield Stage()

    def info(self, message: str) -> None:
        pass

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        yield lambda: None


# How many plain lines a counted step prints when nothing can be redrawn (a log file, CI).
PLAIN_UPDATES = 4


class ConsoleReporter:
    """Stage lines on stderr. On a terminal, a live line sits under them while work runs (a spinner and
    the elapsed time for a stage, a bar and a count for counted work); elsewhere (a log file, CI) only
    plain lines are written, so a redirected run still shows what it is doing."""

    def __init__(self, console=None) -> None:

        self.console = console or Console(stderr=True, highlight=False)
        self._live = None  # one rich Progress shared by nested stages: rich allows one live display per console

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal

    @contextmanager
    def stage(self, name: str, action: str) -> Iterator[Stage]:

        stage = Stage()
        start = time.perf_counter()
        self.console.print(f"[bold]{name}:[/bold] {escape(action)}...", soft_wrap=True)
        try:
            with self._task(f"{name}: {action}") if self.interactive else nullcontext():
                yield stage
        except BaseException:
            self.console.print(f"[bold]{name}:[/bold] [red]failed[/red] after {time.perf_counter() - start:.1f}s")
            raise
        detail = f", {escape(stage.result)}" if stage.result else ""
        self.console.print(f"[bold]{name}:[/bold] [green]done[/green] in {time.perf_counter() - start:.1f}s{detail}",
                           soft_wrap=True)

    def info(self, message: str) -> None:

        self.console.print(escape(message), soft_wrap=True)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        with self.steps(description) as update:
            done = 0

            def advance() -> None:
                nonlocal done
                done += 1
                update(done, total, "")

            update(0, total, "")
            yield advance

    @contextmanager
    def steps(self, name: str) -> Iterator[Callable[[int, int, str], None]]:
        """``update(done, total, description)`` for work counted in steps whose total is known late (profile,
        compare): a bar on a terminal; elsewhere a line per step when there are few, else every quarter."""

        if self.interactive:
            with self._task(name) as (bar, task):
                yield lambda done, total, description: bar.update(
                    task, completed=done, total=total, count=f"{done}/{total}",
                    description=escape(f"{name}: {description}" if description else name))
            return
        start = time.perf_counter()
        finished = False

        def update(done: int, total: int, description: str) -> None:
            nonlocal finished
            every = max(1, total // PLAIN_UPDATES) if total > 2 * PLAIN_UPDATES else 1
            if finished or (done < total and done % every):
                return
            finished = done >= total
            elapsed = f" ({time.perf_counter() - start:.0f}s)" if done else ""
            said = f": {description}" if description else ""
            self.info(f"  {name} {done}/{total}{said}{elapsed}")

        yield update

    @contextmanager
    def _task(self, description: str):
        """A row of the live display, removed when the work ends; the display stops with its last row."""

        if self._live is None:
            self._live = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                                  TextColumn("{task.fields[count]}"), TimeElapsedColumn(), console=self.console,
                                  transient=True)
            self._live.start()
        bar = self._live
        task = bar.add_task(escape(description), total=None, count="")
        try:
            yield bar, task
        finally:
            bar.remove_task(task)
            if not bar.tasks:
                bar.stop()
                self._live = None
