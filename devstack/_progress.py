"""Progress display: one spinner line per step, or nothing when ``enabled`` is False."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


class Steps:
    """A context manager around a rich ``Progress``; ``step()`` is thread-safe."""

    def __init__(self, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                SpinnerColumn(finished_text="[green]✓"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )

    def __enter__(self) -> Steps:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        progress = self._progress
        if progress is None:
            yield
            return
        with self._lock:
            task = progress.add_task(description, total=1)
        try:
            yield
        except BaseException:
            with self._lock:
                progress.update(task, description=f"[red]✗ {description}")
                progress.stop_task(task)
            raise
        with self._lock:
            progress.update(task, completed=1)

    def note(self, message: str) -> None:
        """A finished one-line step, for things that needed no work."""
        with self.step(message):
            pass
