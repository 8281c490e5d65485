"""What a webhook subscription may say, and which events it receives. Pure."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from mlprov.errors import InvalidInputError
from mlprov.events._types import EVENT_TYPES

__all__ = [
    "MAX_URL_LENGTH",
    "check_event_types",
    "check_model_patterns",
    "check_webhook_url",
    "new_secret",
    "subscription_matches",
]

MAX_URL_LENGTH = 2048
#: A model name pattern: the model name alphabet plus the glob characters ``*`` and ``?``
#: (fnmatch, case-sensitive, as in policy files).
_PATTERN = re.compile(r"^[a-z0-9._*?-]{1,128}$")


def check_webhook_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host and no credentials in it.

    Credentials in the URL would be stored, listed and shown in the delivery log; the
    receiver authenticates the registry by the signature instead.
    """
    if not url or len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidInputError(
            f"webhook URL must be one http(s) URL of at most {MAX_URL_LENGTH} characters"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidInputError(f"webhook URL does not parse: {e}") from e
    if parts.scheme not in ("http", "https"):
        raise InvalidInputError(
            f"webhook URL must start with http:// or https://, not {parts.scheme or 'nothing'}"
        )
    if not parts.hostname:
        raise InvalidInputError("webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError(
            "webhook URL must not carry credentials (user:password@): receivers check the "
            "X-Mlprov-Signature header instead"
        )
    if parts.fragment:
        raise InvalidInputError("webhook URL must not have a #fragment")
    if port == 0:
        raise InvalidInputError("webhook URL has port 0")
    return url


def check_event_types(names: Iterable[str]) -> tuple[str, ...]:
    """The event types named (sorted, without duplicates); an unknown one is refused."""
    wanted = sorted({n.strip() for n in names if n.strip()})
    unknown = [n for n in wanted if n not in EVENT_TYPES]
    if unknown:
        raise InvalidInputError(
            f"unknown event type {unknown[0]!r}: choose from {', '.join(EVENT_TYPES)}"
        )
    return tuple(wanted)


def check_model_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """Model name patterns (``credit-*``), sorted and without duplicates."""
    wanted = sorted({p.strip() for p in patterns if p.strip()})
    for pattern in wanted:
        if not _PATTERN.match(pattern):
            raise InvalidInputError(
                f"model pattern {pattern!r} must use a-z 0-9 . _ - and the wildcards * ?"
            )
    return tuple(wanted)


def subscription_matches(
    events: Sequence[str], models: Sequence[str], event_type: str, model: str | None
) -> bool:
    """Whether a subscription (its event types and model patterns; empty means all)
    receives an event. An event about no model (a revoked key or identity) reaches only
    subscriptions without model patterns."""
    if events and event_type not in events:
        return False
    if not models:
        return True
    return model is not None and any(fnmatchcase(model, p) for p in models)


def new_secret() -> str:
    """A fresh signing secret: 256 random bits, URL-safe text."""
    return "whsec_" + secrets.token_urlsafe(32)
