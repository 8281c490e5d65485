"""Options shared by command modules, and parsing of repeated ``K=V`` options."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from mlprov.documents import load_json, parse_number
from mlprov.errors import DocumentSyntaxError, InvalidInputError

__all__ = [
    "IdentityOption",
    "IdentityTokenOption",
    "IssuerOption",
    "JsonOption",
    "PassphraseEnvOption",
    "ReasonOption",
    "SigstoreFlag",
    "TrustChainOption",
    "TrustKeyOption",
    "WideOption",
    "parse_pairs",
    "parse_value",
]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (every field; shapes in docs/cli.md).")
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Show full digests, sizes and times; let the table grow.")
]
ReasonOption = Annotated[
    str, typer.Option("--reason", metavar="TEXT", help="Why; recorded in history and audit.")
]
# How a statement (approval, waiver, revocation, checkpoint) is signed, besides a key.
SigstoreFlag = Annotated[bool, typer.Option("--sigstore", help="Sign keylessly.")]
IdentityTokenOption = Annotated[
    str | None,
    typer.Option("--identity-token", metavar="TOKEN", help="OIDC token for --sigstore."),
]
PassphraseEnvOption = Annotated[
    str | None,
    typer.Option("--passphrase-env", metavar="VAR", help="Variable holding the passphrase."),
]
# Whom a signature must be signed by, checked here (``evidence``, ``provenance``, ``bom``,
# ``card``, and ``diff`` against a server): one of a key, a root, or a Sigstore identity.
TrustKeyOption = Annotated[
    Path | None,
    typer.Option("--key", metavar="FILE", help="Check signatures against this public key (PEM)."),
]
TrustChainOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--certificate-chain",
        metavar="FILE",
        help="Check signatures against this trusted root / chain (PEM).",
    ),
]
IdentityOption = Annotated[
    str | None, typer.Option("--identity", metavar="IDENTITY", help="Sigstore identity.")
]
IssuerOption = Annotated[
    str | None, typer.Option("--issuer", metavar="URL", help="Sigstore OIDC issuer.")
]

#: A decimal number as JSON writes it, with an optional leading sign (``+1``, ``-0.5e3``).
_NUMBER = re.compile(r"\A[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def parse_value(text: str, what: str = "value") -> Any:
    """``3`` -> 3, ``0.1`` -> 0.1, ``true`` -> True, JSON objects, lists and strings as JSON,
    anything else as text.

    A value that starts like JSON (``{``, ``[``, ``"``) must be valid JSON within the
    document limits (:mod:`mlprov.documents`): a typo is an error, not silently text.
    A number must be finite and not overlong; text that is not a decimal number
    (``inf``, ``nan``, ``1_000``) stays text.
    """
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return load_json(stripped.encode("utf-8", "surrogateescape"), what)
        except DocumentSyntaxError as e:
            raise DocumentSyntaxError(
                f"{e.message} (to pass text starting with {stripped[:1]}, write it as a "
                "JSON string: '\"...\"')"
            ) from e
    if _NUMBER.match(stripped):
        return parse_number(stripped, what)
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
        result[key] = parse_value(value, f"{what} {key!r}") if typed else value
    return result
