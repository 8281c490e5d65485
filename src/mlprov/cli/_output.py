"""Presenting results: JSON for machines (deterministic), rich tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["dump_json", "print_json", "print_table", "say"]


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def print_json(value: Any) -> None:
    sys.stdout.write(dump_json(value) + "\n")


def say(message: str) -> None:
    """A line for people on stdout."""
    sys.stdout.write(message + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if cell is None else str(cell) for cell in row])
    Console(soft_wrap=True).print(table)
