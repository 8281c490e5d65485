"""Model names and version references.

Accepted forms: ``models:/name/3``, ``models:/name@alias``, ``name/3``, ``name@alias``.

Pure: parsing and validation only. Names are ASCII lower case so that two models can
never look alike (no Unicode confusables, no case folding surprises, no path tricks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlprov.errors import InvalidNameError, InvalidReferenceError

__all__ = [
    "LATEST",
    "MAX_VERSION",
    "ModelRef",
    "validate_alias",
    "validate_model_name",
]

_NAME = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,127}\Z")
_ALIAS = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")
_DIGITS = re.compile(r"\A[0-9]+\Z")
_PREFIX = "models:/"

#: The highest version number a store holds (a 32-bit signed integer column).
MAX_VERSION = 2**31 - 1

#: A built-in alias: the highest version number. It cannot be set or deleted.
LATEST = "latest"


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise InvalidNameError."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        shown = name if isinstance(name, str) else type(name).__name__
        raise InvalidNameError(
            f"invalid model name {shown[:140]!r}: use 1-128 ASCII characters from "
            "a-z 0-9 . _ -, starting with a letter or digit, without '..'"
        )
    return name


def validate_alias(alias: str) -> str:
    """Return ``alias`` if valid: like a model name (at most 64), and not only digits."""
    if not isinstance(alias, str) or not _ALIAS.match(alias) or ".." in alias:
        raise InvalidNameError(
            f"invalid alias {str(alias)[:80]!r}: use 1-64 ASCII characters from a-z 0-9 . _ -"
        )
    if _DIGITS.match(alias):
        raise InvalidNameError(f"invalid alias {alias!r}: an alias cannot be only digits")
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A reference to one version: by number or by alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        validate_model_name(self.name)
        if (self.version is None) == (self.alias is None):
            raise InvalidReferenceError("a reference names exactly one of a version or an alias")
        if self.version is not None and not 1 <= self.version <= MAX_VERSION:
            raise InvalidReferenceError(
                f"invalid version number {str(self.version)[:24]}: versions run from 1 "
                f"to {MAX_VERSION}"
            )
        if self.alias is not None:
            validate_alias(self.alias)

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse any accepted form; raise InvalidReferenceError with the accepted forms."""
        body = text[len(_PREFIX) :] if text.startswith(_PREFIX) else text
        try:
            if "@" in body:
                name, _, alias = body.partition("@")
                return cls(name=validate_model_name(name), alias=alias)
            name, sep, number = body.rpartition("/")
            if sep and _DIGITS.match(number) and len(number) <= 9:
                return cls(name=validate_model_name(name), version=int(number))
        except InvalidNameError as e:
            raise InvalidReferenceError(f"invalid reference {text[:160]!r}: {e}") from e
        raise InvalidReferenceError(
            f"invalid reference {text[:160]!r}: use NAME/VERSION, NAME@ALIAS, "
            "models:/NAME/VERSION or models:/NAME@ALIAS"
        )

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}"
