"""Stage lines for long work ("ONNX: exporting ...", "ONNX: done in 1.2s, ..."), kept apart from results.

The library reports through a Reporter; the CLI passes one that prints to stderr, library callers get
silence unless they pass one.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Protocol


class Reporter(Protocol):
    def stage(self, name: str, action: str) -> "StageContext": ...

    def info(self, message: str) -> None: ...


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
