"""Durations as people write them on the command line and in policy files.

One grammar everywhere (ARCHITECTURE.md, rule 7: one of each): days, hours, minutes and
seconds in that order, each at most once, e.g. ``90s``, ``90m``, ``24h``, ``7d``,
``1h30m``. Policy ``duration``/``max_duration``, ``mlprov waive --expires`` and
``mlprov token create --expires`` all read durations through :func:`parse_duration`.
"""

from __future__ import annotations

import re
from datetime import timedelta

from mlprov.errors import InvalidInputError

__all__ = ["parse_duration"]

_DURATION = re.compile(r"\A(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?\Z")


def parse_duration(
    text: str, *, at_most: timedelta | None = None, what: str = "the duration"
) -> timedelta:
    """``24h``, ``7d``, ``1h30m``, ``90s`` -> timedelta; InvalidInputError otherwise
    (also for a zero duration, and for one longer than ``at_most``, naming ``what``)."""
    match = _DURATION.match(text.strip())
    if match is None or not any(match.groups()):
        raise InvalidInputError(
            f"{text[:40]!r} is not a duration: use e.g. 90s, 90m, 24h, 7d or 1h30m"
        )
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise InvalidInputError(f"{text[:40]!r} is not a duration longer than zero")
    if at_most is not None and value > at_most:
        raise InvalidInputError(f"{what} lasts at most {_spoken(at_most)}, not {text.strip()}")
    return value


def _spoken(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" + ("s" if count != 1 else "")
    return f"{seconds} seconds"
