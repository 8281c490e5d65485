"""A rich progress bar (bytes, rate, time left) on stderr, only for people at a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

__all__ = ["byte_progress"]

#: Below this many bytes a bar would only flicker.
MIN_BYTES_FOR_BAR = 4 * 1024 * 1024


@contextlib.contextmanager
def byte_progress(
    description: str, total: int, *, quiet: bool = False
) -> Iterator[Callable[[int], None] | None]:
    """Yield a callback taking byte counts, or None when no bar should show."""
    if quiet or total < MIN_BYTES_FOR_BAR or not sys.stderr.isatty():
        yield None
        return
    import threading  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    lock = threading.Lock()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(count: int) -> None:
            with lock:
                bar.advance(task, count)

        yield advance
