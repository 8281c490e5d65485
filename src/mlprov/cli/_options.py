"""Parsing of repeated ``K=V`` options, shared by command modules."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from mlprov.errors import InvalidInputError

__all__ = ["JsonOption", "ReasonOption", "parse_pairs", "parse_value"]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ReasonOption = Annotated[
    str, typer.Option("--reason", metavar="TEXT", help="Why; recorded in history and audit.")
]


def parse_value(text: str) -> Any:
    """``3`` -> 3, ``0.1`` -> 0.1, ``true`` -> True, JSON objects and lists as JSON, else text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    for kind in (int, float):
        try:
            value = kind(stripped)
        except ValueError:
            continue
        if kind is float and value != value:  # NaN  # noqa: PLR0124
            return text
        return value
    return text


def parse_pairs(items: list[str] | None, what: str, *, typed: bool) -> dict[str, Any]:
    """Parse repeated ``KEY=VALUE`` options; a key given twice is an error."""
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInputError(f"invalid {what} {item[:80]!r}: use KEY=VALUE")
        if key in result:
            raise InvalidInputError(f"{what} {key!r} given twice")
        result[key] = parse_value(value) if typed else value
    return result
