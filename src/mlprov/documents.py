"""The one reader of untrusted JSON and YAML documents, bounded by :class:`~mlprov.config.Limits`.

Every document mlprov parses from outside (signature bundles and statements under
verification, params, metrics, predicates, model cards, policy files) goes through
:func:`load_json` or :func:`load_yaml`, so each is refused the same way, with one line,
before any expensive or unbounded work:

* larger than ``limits.max_document_bytes``: refused before decoding (and callers that
  read files stat them first and read at most the limit plus one byte);
* nested deeper than ``limits.max_json_depth``: for JSON a byte scan that never recurses
  runs *before* ``json.loads`` (CPython's decoder recurses once per level and would hit
  ``RecursionError``); for YAML the composer counts collection levels as it builds them,
  far below the interpreter's recursion limit;
* a number literal longer than ``limits.max_number_length`` characters (CPython refuses to
  convert integers of more than 4,300 digits with a ``ValueError``; long floats cost time),
  or one that is not finite (``1e999`` overflows to ``inf``; ``NaN``, ``Infinity``,
  YAML ``.inf``/``.nan``);
* text that is not Unicode: invalid UTF-8, or an escaped lone surrogate;
* a key given twice in one object or mapping (parsers disagree on which one wins);
* YAML aliases (``*name``: shared or exponential structures, "billion laughs"), merge
  keys (``<<``), explicit tags other than the JSON core types (``!!python/object``,
  ``!!binary``, ``!custom``) and implicit dates (quote them): what JSON cannot carry.

Errors are :class:`~mlprov.errors.MalformedDocumentError` (exit 2): bad input;
:class:`~mlprov.errors.DocumentSyntaxError` when the text is not JSON or YAML at all. Engines that
parse a signature bundle under verification turn them into
:class:`~mlprov.errors.MalformedSignatureError` (exit 1; docs/adr/0002).

Nothing here opens a file.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import DocumentSyntaxError, MalformedDocumentError

__all__ = [
    "check_size_and_depth",
    "json_depth_exceeds",
    "load_json",
    "load_yaml",
    "parse_number",
]

# -- size and depth, without parsing ------------------------------------------------------

_SKELETON_DELETE = bytes(b for b in range(256) if b not in b'"[]{}')
_UNIFY = bytes.maketrans(b"{}", b"[]")
# After escapes are gone a string is a quote, non-quotes, a quote: linear to match.
_STRING = re.compile(rb'"[^"]*"')


def _skeleton(data: bytes) -> bytes | None:
    """Quotes removed with string contents; only structural brackets, all as ``[]``."""
    # Drop escapes first: pairs of backslashes, then escaped quotes. Pairing left to
    # right is exactly how JSON (RFC 8259 section 7) pairs a run of backslashes.
    text = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = text.translate(None, _SKELETON_DELETE).replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = _STRING.sub(b"", skeleton)
        if b'"' in skeleton:
            return None  # an unterminated string
    return skeleton.translate(_UNIFY)


def json_depth_exceeds(data: bytes, max_depth: int) -> bool | None:
    """True if JSON ``data`` nests deeper than ``max_depth``; None if it cannot be JSON.

    Works on bytes without parsing, in C-speed passes (``bytes.replace``): each pass
    removes the innermost ``[]`` pairs, so the number of passes needed to empty the
    bracket skeleton is the nesting depth. At most ``max_depth`` passes run, each linear
    in the (shrinking) skeleton: 100,000 levels are refused in milliseconds.
    """
    skeleton = _skeleton(data)
    if skeleton is None:
        return None
    for _ in range(max_depth):
        if not skeleton:
            return False
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            return None  # no innermost pair left but something remains: unbalanced
        skeleton = shorter
    if not skeleton:
        return False
    if b"[]" in skeleton:
        return True
    return None


def _check_size(data: bytes, what: str, limits: Limits) -> None:
    if len(data) > limits.max_document_bytes:
        raise MalformedDocumentError(
            f"{what} is {len(data)} bytes, more than the limit of "
            f"{limits.max_document_bytes} bytes; refused without parsing"
        )


def check_size_and_depth(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a JSON document that is too large or too deep, before any parsing."""
    _check_size(data, what, limits)
    exceeded = json_depth_exceeds(data, limits.max_json_depth)
    if exceeded is None:
        raise DocumentSyntaxError(f"{what} is not valid JSON: brackets or quotes do not balance")
    if exceeded:
        raise MalformedDocumentError(
            f"{what} nests deeper than {limits.max_json_depth} levels; refused without parsing"
        )


def _check_unicode(value: Any, what: str) -> Any:
    """Refuse a lone surrogate (``"\\ud800"``): an escape that decodes to no Unicode text,
    which cannot be written as UTF-8 (and so could not be stored, signed or printed).

    Serialising once is the cheapest complete check; the depth is already bounded.
    """
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8")
    except UnicodeEncodeError as e:
        raise MalformedDocumentError(
            f"{what} has text that is not valid Unicode (a lone surrogate escape)"
        ) from e
    return value


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedDocumentError(f"{what} is not UTF-8 text (byte {e.start})") from e


# -- numbers ------------------------------------------------------------------------------


class _DocumentProblem(ValueError):
    """Raised inside ``json.loads`` hooks; carries the finished sentence out of the decoder."""


def parse_number(text: str, what: str, limits: Limits = DEFAULT_LIMITS) -> int | float:
    """A decimal number literal as int (no ``.``/exponent) or float, within the limits.

    Refused: literals longer than ``limits.max_number_length`` characters, and floats that
    are not finite (``1e999`` overflows to infinity, which JSON cannot carry).
    """
    if len(text) > limits.max_number_length:
        raise MalformedDocumentError(
            f"{what} has a number of {len(text)} characters, more than the limit of "
            f"{limits.max_number_length}"
        )
    try:
        if any(ch in text for ch in ".eE"):
            number: int | float = float(text)
        else:
            number = int(text)
    except ValueError as e:
        raise MalformedDocumentError(f"{what}: {text[:40]!r} is not a number") from e
    if isinstance(number, float) and not math.isfinite(number):
        raise MalformedDocumentError(
            f"{what} has the number {text[:40]}, which is not finite (JSON cannot carry it)"
        )
    return number


# -- JSON ---------------------------------------------------------------------------------


def load_json(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse one JSON value (RFC 8259) within ``limits``; MalformedDocumentError otherwise.

    ``what`` names the document in the one-line error ("params file p.json").
    """
    check_size_and_depth(data, what, limits)
    if not data.strip():
        raise MalformedDocumentError(f"{what} is empty")
    text = _text(data, what)

    def number(literal: str) -> int | float:
        try:
            return parse_number(literal, what, limits)
        except MalformedDocumentError as e:
            raise _DocumentProblem(e.message) from e

    def refuse_constant(name: str) -> Any:
        raise _DocumentProblem(f"{what} is not acceptable JSON: {name} is not a number")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise _DocumentProblem(f"{what} repeats the key {key[:80]!r}")
            result[key] = value
        return result

    try:
        value = json.loads(
            text,
            object_pairs_hook=no_duplicates,
            parse_int=number,
            parse_float=number,
            parse_constant=refuse_constant,
        )
    except _DocumentProblem as e:
        raise MalformedDocumentError(str(e)) from e
    except json.JSONDecodeError as e:
        raise DocumentSyntaxError(
            f"{what} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e
    except RecursionError as e:  # not reachable after the depth scan; kept as a backstop
        raise MalformedDocumentError(f"{what} nests too deeply") from e
    return _check_unicode(value, what)


# -- YAML ---------------------------------------------------------------------------------

_CORE = "tag:yaml.org,2002:"
#: Explicit tags that only restate a JSON type; any other explicit tag is refused.
_JSON_TAGS = frozenset(
    _CORE + name for name in ("str", "int", "float", "bool", "null", "map", "seq")
)


@functools.cache
def _loader_class() -> type[Any]:
    """The bounded loader class, built on first use: PyYAML costs start-up time that the
    commands which never read YAML (verify, resolve) should not pay."""
    import yaml  # noqa: PLC0415 - lazy, see above

    class _BoundedLoader(yaml.SafeLoader):
        """PyYAML's pure-Python SafeLoader, restricted to what JSON can carry and bounded.

        The scanner and parser are iterative; only the composer and constructor recurse, so
        counting collection levels in the composer stops a deep document long before the
        interpreter's recursion limit.
        """

        def __init__(self, text: str, what: str, limits: Limits) -> None:
            super().__init__(text)
            self._what = what
            self._limits = limits
            self._depth = 0

        def _problem(self, mark: Any, message: str) -> MalformedDocumentError:
            return MalformedDocumentError(f"{self._what}: line {mark.line + 1}: {message}")

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent):
                raise self._problem(event.start_mark, "YAML aliases (*name) are not allowed")
            tag = getattr(event, "tag", None)
            if tag not in (None, "!") and tag not in _JSON_TAGS:
                raise self._problem(
                    event.start_mark, f"the YAML tag {tag[:80]!r} is not allowed (JSON types only)"
                )
            return super().compose_node(parent, index)

        def _enter(self, mark: Any) -> None:
            self._depth += 1
            if self._depth > self._limits.max_json_depth:
                raise self._problem(mark, f"nests deeper than {self._limits.max_json_depth} levels")

        def compose_sequence_node(self, anchor: Any) -> Any:
            self._enter(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            try:
                return super().compose_sequence_node(anchor)
            finally:
                self._depth -= 1

        def compose_mapping_node(self, anchor: Any) -> Any:
            self._enter(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            try:
                return super().compose_mapping_node(anchor)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[str] = set()
            for key_node, _ in node.value:
                if key_node.tag == _CORE + "merge":
                    raise self._problem(key_node.start_mark, "YAML merge keys (<<) are not allowed")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self._problem(key_node.start_mark, "a key must be text, not a collection")
                key = self.construct_object(key_node)
                if not isinstance(key, str):
                    raise self._problem(
                        key_node.start_mark, f"the key {key!r} is not text (quote it: '{key}')"
                    )
                if key in seen:
                    raise self._problem(key_node.start_mark, f"repeats the key {key[:80]!r}")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

        def _check_number_length(self, node: Any) -> None:
            # YAML 1.1 also reads 0x1F, 0o17, 1_000 and 1:30 (base 60); the length bound
            # applies to the literal as written, the finiteness check to the value.
            if len(node.value) > self._limits.max_number_length:
                raise self._problem(
                    node.start_mark,
                    f"a number of {len(node.value)} characters is more than the limit of "
                    f"{self._limits.max_number_length}",
                )

        def construct_bounded_int(self, node: Any) -> int:
            self._check_number_length(node)
            try:
                return super().construct_yaml_int(node)
            except ValueError as e:
                raise self._problem(node.start_mark, f"{node.value[:40]!r} is not a number") from e

        def construct_bounded_float(self, node: Any) -> float:
            self._check_number_length(node)
            value = super().construct_yaml_float(node)
            if not math.isfinite(value):
                raise self._problem(
                    node.start_mark,
                    f"{node.value[:40]!r} is not a finite number (JSON cannot carry it)",
                )
            return value

        def construct_refused_timestamp(self, node: Any) -> Any:
            raise self._problem(
                node.start_mark,
                f"{node.value[:40]!r} reads as a date in YAML; quote it to keep text",
            )

    _BoundedLoader.add_constructor(_CORE + "int", _BoundedLoader.construct_bounded_int)
    _BoundedLoader.add_constructor(_CORE + "float", _BoundedLoader.construct_bounded_float)
    _BoundedLoader.add_constructor(_CORE + "timestamp", _BoundedLoader.construct_refused_timestamp)

    return _BoundedLoader


def load_yaml(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse one YAML document within ``limits``, as the JSON value it spells.

    An empty document is ``None``. MalformedDocumentError for anything refused (see the
    module docstring) or any YAML syntax error.
    """
    import yaml  # noqa: PLC0415 - lazy, see _loader_class

    _check_size(data, what, limits)
    text = _text(data, what)
    loader = _loader_class()(text, what, limits)
    try:
        value = loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise DocumentSyntaxError(f"{what} is not valid YAML{where}: {problem}") from e
    except RecursionError as e:  # not reachable under the depth count; kept as a backstop
        raise MalformedDocumentError(f"{what} nests too deeply") from e
    finally:
        loader.dispose()
    return _check_unicode(value, what)
