"""The canonical JSON of mlprov: one module, two documented serialisations.

* :func:`canonical_json` writes the documents mlprov signs (in-toto statements, SLSA
  provenance, the ML-BOM, the model card). Object keys sorted, separators ``(",", ":")``,
  UTF-8 without ``\\u`` escapes, integers kept as integers of any size and floats written
  with Python's shortest round-trip ``repr`` (so ``3.0`` stays ``3.0``). Nobody needs to
  re-serialise these: the exact bytes are stored and their signatures verified over them
  (STYLE.md, 2).
* :func:`rfc8785_json` is RFC 8785 (JSON Canonicalization Scheme) through the ``rfc8785``
  package, for bytes a third party must be able to recompute from the parsed values and
  hash again: the audit chain (``docs/registry.md``, "What each audit hash covers"). Its
  numbers are I-JSON (integers within +-2**53), as RFC 8785 section 3.2.2.3 requires.

Both refuse what JSON cannot carry unambiguously (NaN, infinities, non-string keys, lone
surrogates, values of other types, nesting beyond ``Limits.max_json_depth``) with an
:class:`~mlprov.errors.InvalidInputError` naming where. Nothing here opens a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from mlprov.config import DEFAULT_LIMITS
from mlprov.errors import InvalidInputError

__all__ = ["canonical_json", "check_json_value", "rfc8785_json"]


def check_json_value(value: Any, what: str, *, max_depth: int | None = None) -> None:
    """Refuse anything that JSON cannot carry unambiguously.

    Allowed: None, bool, int, finite float, str, lists/tuples and mappings with string
    keys, nested at most ``max_depth`` levels (``Limits.max_json_depth`` by default, so
    what we write a verifier with the same limits can read back).
    """
    limit = DEFAULT_LIMITS.max_json_depth if max_depth is None else max_depth

    def check(item: Any, where: str, depth: int) -> None:
        if depth > limit:
            raise InvalidInputError(f"{what}: {where or 'the document'} nests deeper than {limit}")
        if item is None or isinstance(item, bool | int | str):
            return
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInputError(
                    f"{what}: {where or 'value'} is {item}, which JSON cannot represent"
                )
            return
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise InvalidInputError(
                        f"{what}: key {key!r} under {where or 'the top level'} is not a string"
                    )
                check(sub, f"{where}.{key}" if where else key, depth + 1)
            return
        if isinstance(item, list | tuple):
            for index, sub in enumerate(item):
                check(sub, f"{where}[{index}]", depth + 1)
            return
        raise InvalidInputError(
            f"{what}: {where or 'value'} has type {type(item).__name__}, which JSON cannot hold"
        )

    check(value, "", 0)


def canonical_json(value: Any, what: str = "document") -> bytes:
    """The deterministic UTF-8 JSON bytes of a document mlprov signs (module docstring)."""
    check_json_value(value, what)
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        # A lone surrogate (from a mis-decoded file name, say) has no UTF-8 encoding.
        raise InvalidInputError(f"{what}: text is not valid Unicode ({e.reason})") from e


def rfc8785_json(value: Any, what: str = "document") -> bytes:
    """RFC 8785 canonical bytes: what a third party recomputes before hashing."""
    import rfc8785  # noqa: PLC0415 - only writers and `audit verify` need it

    check_json_value(value, what)
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError as e:
        raise InvalidInputError(
            f"{what}: an integer is outside the +-2**53 range RFC 8785 allows; give it as a string"
        ) from e
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as e:
        raise InvalidInputError(f"{what}: cannot be canonicalised: {e}") from e
