"""Presenting results: JSON for machines (deterministic), tables and lines for people.

Everything shown comes from the registry or from a signed document, so it is data, never
markup or terminal control: a tag ``[bold red]x[/]`` or a metric ``auc[segment=retail]``
shows as written, and control characters (C0, DEL, C1 and so ESC, CSI and OSC 8
hyperlinks; Unicode bidirectional overrides, which reorder what a reader sees) are
shown as escapes such as ``\\x1b``, never sent to the terminal. Table cells are Rich
``Text`` objects, which Rich never parses as markup. JSON keeps every value exactly; its
C0 controls are escaped by JSON itself, and the rest of the set above is written as
``\\uXXXX`` escapes, which decode to the same strings.

Tables are made to be read at 80 columns: short digests (``sha256:1a2b3c4d…``), sizes in
binary units (``1.2 MiB``), times to the second; ``wide`` shows every value in full.

This module imports Rich only inside :func:`print_table`: ``mlprov verify PATH --key``
(:mod:`mlprov.cli._direct`) prints through it and must start fast.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "Cell",
    "dump_json",
    "echo_document",
    "human_size",
    "note",
    "print_json",
    "print_table",
    "printable",
    "say",
    "short_digest",
    "short_signer",
    "short_time",
]

#: Characters that a terminal may act on instead of showing: C0 controls, DEL, C1 controls
#: (ECMA-48: 0x1b starts ESC/CSI/OSC sequences, 0x9b is CSI by itself), the Unicode
#: bidirectional controls (Unicode TR9; "Trojan Source", CVE-2021-42574) and the line and
#: paragraph separators.
_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_IN_CELL = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
#: Documents (a model card is Markdown) and trees keep their tabs and newlines.
_UNSAFE_IN_DOCUMENT = re.compile(f"[\x00-\x08\x0b-\x1f{_BEYOND_C0}]")
#: What json.dumps(ensure_ascii=False) leaves raw (it escapes C0 itself).
_UNSAFE_IN_JSON = re.compile(f"[{_BEYOND_C0}]")

#: A table cell: text (shown literally), a number, None (empty), or lines of text.
Cell = str | int | float | None | Sequence[str]


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character a terminal could act on shown as an escape.

    With ``keep_newlines``, newlines and tabs stay (documents, trees); else they too are
    escaped, so one value is one line.
    """
    pattern = _UNSAFE_IN_DOCUMENT if keep_newlines else _UNSAFE_IN_CELL
    return pattern.sub(_escape, text)


def dump_json(value: Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    # Inside JSON strings only (nothing else can hold these): same value, safe to show.
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(value: Any) -> None:
    sys.stdout.write(dump_json(value) + "\n")


def say(message: str) -> None:
    """A line (or lines) for people on stdout, with any control character escaped."""
    sys.stdout.write(printable(message, keep_newlines=True) + "\n")


def note(message: str) -> None:
    """A line for people on stderr, beside a document on stdout (which stays parseable)."""
    sys.stderr.write("mlprov: " + printable(message) + "\n")


def echo_document(text: str) -> None:
    """A document (Markdown, JSON) on stdout, newline-terminated, controls escaped."""
    shown = printable(text, keep_newlines=True)
    sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")


def short_digest(digest: str, *, wide: bool = False) -> str:
    """``sha256:1a2b3c4d…`` (the algorithm and 8 hex digits); the whole digest if ``wide``."""
    algorithm, sep, hexdigits = digest.partition(":")
    if wide or not sep or len(hexdigits) <= 12:
        return digest
    return f"{algorithm}:{hexdigits[:8]}…"


def short_signer(signer: str, *, wide: bool = False) -> str:
    """``key:1a2b3c4d5e6f7a8b…`` for a key hint; other signers (a certificate subject, a
    Sigstore identity) in full, since any part of them may be the part that matters."""
    method, sep, rest = signer.partition(":")
    if wide or method != "key" or not sep or len(rest) <= 20:
        return signer
    return f"key:{rest[:16]}…"


_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size: int, *, wide: bool = False) -> str:
    """``512 B``, ``1.2 MiB``, ``15 GiB``; the exact byte count if ``wide``."""
    if wide:
        return f"{size} B"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


_TIME = re.compile(r"\A(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]00:00)?\Z")


def short_time(at: str, *, wide: bool = False) -> str:
    """``2026-12-01T10:14:56Z``: a registry time (UTC) to the second; as stored if ``wide``."""
    match = _TIME.match(at)
    if wide or match is None:
        return at
    return f"{match.group(1)}Z" if match.group(2) else match.group(1)


#: Columns whose values are read whole (a time, a digest, a number): never folded, so the
#: table narrows the free-text columns instead.
_WHOLE_COLUMNS = frozenset(
    {"version", "latest", "digest", "size", "stage", "from", "to", "gen", "seq"}
    | {"created", "when", "added", "signature", "files", "id", "expires"}
)


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, int | float):
        return str(value)
    return "\n".join(printable(line) for line in value)


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    *,
    wide: bool = False,
) -> None:
    """A table on stdout; every cell shown literally (see the module docstring).

    The table fits the terminal (or ``COLUMNS``, else 80 columns), folding long cells of
    free text (times, digests and numbers stay whole); ``wide`` lets it grow as wide as its
    longest values so nothing folds.
    """
    from rich import box  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    # A rule under the header and no vertical borders: more room for values at 80 columns.
    table = Table(
        title=Text(printable(title)) if title else None,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        title_justify="left",
    )
    for column in columns:
        table.add_column(Text(column), overflow="fold", no_wrap=wide or column in _WHOLE_COLUMNS)
    for row in rows:
        table.add_row(*(Text(_cell(value)) for value in row))
    console = Console(highlight=False)
    if wide:
        unbounded = console.options.update_width(1 << 16)
        console.width = max(console.width, console.measure(table, options=unbounded).maximum)
    with console.capture() as captured:
        console.print(table)
    # Rich pads every line to the table's width; trailing blanks only get in the way.
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
