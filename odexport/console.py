"""Stage lines for long work ("ONNX: exporting ...", "ONNX: done in 1.2s, ..."), kept apart from results.

The library reports through a Reporter; the CLI passes one that prints to stderr, library callers get
silence unless they pass one.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator, Protocol


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


class ConsoleReporter:
    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)

    @contextmanager
    def stage(self, name: str, action: str) -> Iterator[Stage]:
        stage = Stage()
        start = time.perf_counter()
        self.console.print(f"[bold]{name}:[/bold] {action}...", soft_wrap=True)
        try:
            yield stage
        except BaseException:
            self.console.print(f"[bold]{name}:[/bold] [red]failed[/red] after {time.perf_counter() - start:.1f}s")
            raise
        detail = f", {stage.result}" if stage.result else ""
        self.console.print(f"[bold]{name}:[/bold] [green]done[/green] in {time.perf_counter() - start:.1f}s{detail}",
                           soft_wrap=True)

    def info(self, message: str) -> None:
        self.console.print(message, soft_wrap=True)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)
