"""Bounded JSON parsing for untrusted documents (bundles, envelopes, statements).

Every document that reaches a verifier is hostile until proven otherwise, so it is
refused *before* ``json.loads`` when it is larger than ``Limits.max_document_bytes`` or
nested deeper than ``Limits.max_json_depth``. The depth is measured with a cheap scan
over bytes that never recurses and runs in C-speed passes (``bytes.replace`` and
``bytes.translate``): escapes are dropped, the document is reduced to its skeleton of
quotes and brackets, string contents are removed, and matched bracket pairs are peeled
off one nesting level per pass. A 10,000-deep document is refused in microseconds with
memory bounded by a few copies of the document.

After parsing, a few ambiguities that different JSON parsers resolve differently are
refused too: duplicate object keys, ``NaN``/``Infinity``, and a top level that is not
an object.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import MalformedDocumentError

__all__ = ["check_size_and_depth", "json_depth_exceeds", "parse_json_object"]

_SKELETON_DELETE = bytes(b for b in range(256) if b not in b'"[]{}')
_UNIFY = bytes.maketrans(b"{}", b"[]")
# After escapes are gone a string is a quote, non-quotes, a quote: linear to match.
_STRING = re.compile(rb'"[^"]*"')


def _skeleton(data: bytes) -> bytes | None:
    """Quotes removed with string contents; only structural brackets, all as ``[]``."""
    # Drop escapes first: pairs of backslashes, then escaped quotes. Pairing left to
    # right is exactly how JSON pairs a run of backslashes.
    text = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = text.translate(None, _SKELETON_DELETE).replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = _STRING.sub(b"", skeleton)
        if b'"' in skeleton:
            return None  # an unterminated string
    return skeleton.translate(_UNIFY)


def json_depth_exceeds(data: bytes, max_depth: int) -> bool | None:
    """True if ``data`` nests deeper than ``max_depth``; None if it cannot be JSON.

    Works on bytes without parsing: each pass removes the innermost ``[]`` pairs, so the
    number of passes needed to empty the bracket skeleton is the nesting depth. At most
    ``max_depth`` passes run, each linear in the (shrinking) skeleton.
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


def check_size_and_depth(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a document that is too large or too deep, before any parsing."""
    if len(data) > limits.max_document_bytes:
        raise MalformedDocumentError(
            f"{what} is {len(data)} bytes, more than the limit of "
            f"{limits.max_document_bytes} bytes; refused without parsing"
        )
    exceeded = json_depth_exceeds(data, limits.max_json_depth)
    if exceeded is None:
        raise MalformedDocumentError(f"{what} is not valid JSON: brackets or quotes do not balance")
    if exceeded:
        raise MalformedDocumentError(
            f"{what} nests deeper than {limits.max_json_depth} levels; refused without parsing"
        )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_json_object(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Parse ``data`` as one JSON object within ``limits``; MalformedDocumentError otherwise."""
    check_size_and_depth(data, what, limits)
    if not data.strip():
        raise MalformedDocumentError(f"{what} is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedDocumentError(f"{what} is not UTF-8 text (byte {e.start})") from e
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _DuplicateKeyError as e:
        raise MalformedDocumentError(f"{what} repeats the key {e.key[:80]!r}") from e
    except json.JSONDecodeError as e:
        raise MalformedDocumentError(
            f"{what} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e
    except (ValueError, RecursionError) as e:
        raise MalformedDocumentError(f"{what} is not acceptable JSON: {e}") from e
    if not isinstance(value, dict):
        raise MalformedDocumentError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value
