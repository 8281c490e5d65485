"""Bounded JSON parsing for signed documents (bundles, envelopes, statements).

Every document that reaches a verifier is hostile until proven otherwise. The parsing
itself is :func:`mlprov.documents.load_json`, the one reader of untrusted documents
(size and depth refused before ``json.loads``, duplicate keys, NaN/Infinity, overlong or
infinite numbers refused); this module adds what signed documents need on top: the top
level must be an object. The verifier turns the errors into
:class:`~mlprov.errors.MalformedSignatureError` (exit 1, docs/adr/0002).
"""

from __future__ import annotations

from typing import Any

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.documents import check_size_and_depth, json_depth_exceeds, load_json
from mlprov.errors import MalformedDocumentError

__all__ = ["check_size_and_depth", "json_depth_exceeds", "parse_json_object"]


def parse_json_object(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Parse ``data`` as one JSON object within ``limits``; MalformedDocumentError otherwise."""
    value = load_json(data, what, limits)
    if not isinstance(value, dict):
        raise MalformedDocumentError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value
