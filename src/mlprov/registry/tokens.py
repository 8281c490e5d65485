"""Bearer tokens: created (audited, the secret shown once), listed, revoked (audited),
and authenticated into a :class:`~mlprov.access.Principal`.

A token's secret is ``mlp_<id>_<43 characters of base64url>``: its id (``tok_`` and 12
hex digits) names the stored row, and the rest is 256 bits from :mod:`secrets`. Only the
SHA-256 of the whole secret is stored; authentication finds the row by the id the secret
carries and compares digests in constant time (docs/adr/0042). Nothing here decides who
may do what: that is :func:`mlprov.access.authorize`, called by the interface that acts
for the principal.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from mlprov.access import Principal, Role, check_model_patterns
from mlprov.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError
from mlprov.records import TokenRecord
from mlprov.registry._context import MAX_ATTEMPTS, RegistryContext, utc_now
from mlprov.registry._unit import mutation
from mlprov.registry.types import IssuedToken

__all__ = [
    "MAX_TOKEN_LIFETIME",
    "SECRET_PREFIX",
    "TokenCache",
    "authenticate",
    "authenticate_cached",
    "create_token",
    "revoke_token",
    "tokens",
]

#: What every secret starts with, so scanners (and people) recognise a leaked one.
SECRET_PREFIX = "mlp_"  # noqa: S105 - a prefix every secret shares, not a secret
#: The longest lifetime ``expires`` may give (a token without ``expires`` never expires).
MAX_TOKEN_LIFETIME = timedelta(days=3650)

_TOKEN_ID = re.compile(r"\Atok_[0-9a-f]{12}\Z")
# secrets.token_urlsafe(32): 32 random bytes, unpadded base64url, always 43 characters.
_SECRET = re.compile(r"\Amlp_(tok_[0-9a-f]{12})_[A-Za-z0-9_-]{43}\Z")
# No spaces or parentheses: the audit actor "token:NAME (ID)" stays unambiguous.
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
_MAX_REASON = 4096


class TokenCache:
    """Token rows as authentication last read them, each kept at most ``seconds``.

    A server authenticates every request; reading the token's row each time is most of
    what a cheap request costs. With a cache, a row read less than ``seconds`` ago is
    used again, so a revocation made elsewhere (another process or replica, the CLI)
    takes effect within ``seconds`` (docs/adr/0049). One made through this registry
    forgets the row at once. Only the row is cached, never a decision: the presented
    secret's digest is compared, and expiry checked, on every request, and ids that
    match no row are never kept (guessing ids cannot fill the cache).
    """

    #: Rows kept at most; the oldest are dropped first.
    MAX_TOKENS = 10_000

    def __init__(self, seconds: float) -> None:
        if not 0 < seconds <= 60:
            raise ValueError("a token cache keeps rows for more than 0 and at most 60 seconds")
        self.seconds = seconds
        self._rows: dict[str, tuple[float, TokenRecord, str]] = {}
        self._lock = threading.Lock()

    def get(self, token_id: str) -> tuple[TokenRecord, str] | None:
        with self._lock:
            found = self._rows.get(token_id)
        if found is None or time.monotonic() - found[0] >= self.seconds:
            return None
        return found[1], found[2]

    def put(self, token_id: str, row: tuple[TokenRecord, str], read_at: float) -> None:
        with self._lock:
            self._rows.pop(token_id, None)
            self._rows[token_id] = (read_at, *row)
            while len(self._rows) > self.MAX_TOKENS:
                self._rows.pop(next(iter(self._rows)))

    def forget(self, token_id: str) -> None:
        with self._lock:
            self._rows.pop(token_id, None)

    def __len__(self) -> int:
        return len(self._rows)


def _secret_sha256(secret: str) -> str:
    # A plain SHA-256 is right here, unlike for passwords: the secret is 256 random bits,
    # so there is no dictionary to try and a slow hash (bcrypt, scrypt, Argon2) would only
    # add latency to every request (docs/adr/0042).
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


def _format_time(moment: datetime) -> str:
    # The registry's one time format (mlprov.registry._context.utc_now).
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        shown = name[:40] if isinstance(name, str) else type(name).__name__
        raise InvalidInputError(
            f"invalid token name {shown!r}: 1 to 64 of A-Z a-z 0-9 . _ @ -, starting with a "
            "letter or digit"
        )
    return name


def _check_token_id(token_id: str) -> str:
    if not isinstance(token_id, str) or not _TOKEN_ID.match(token_id):
        shown = token_id[:40] if isinstance(token_id, str) else type(token_id).__name__
        raise InvalidInputError(f"invalid token id {shown!r}: a token id is tok_ and 12 hex digits")
    return token_id


def create_token(
    context: RegistryContext,
    role: Role | str,
    *,
    name: str,
    models: Sequence[str] = ("*",),
    expires: timedelta | None = None,
) -> IssuedToken:
    """A new token for ``role`` on the models ``models`` match, expiring after
    ``expires`` (never, without it). The secret is in the result and nowhere else."""
    chosen = Role.parse(role)
    _check_name(name)
    # A bare string is a sequence of one-character patterns; it means one pattern.
    patterns = check_model_patterns((models,) if isinstance(models, str) else models)
    if expires is not None and not timedelta(0) < expires <= MAX_TOKEN_LIFETIME:
        raise InvalidInputError(
            f"a token expires after more than zero and at most {MAX_TOKEN_LIFETIME.days} days"
        )
    for _ in range(MAX_ATTEMPTS):
        token_id = f"tok_{secrets.token_hex(6)}"
        secret = f"{SECRET_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        digest = _secret_sha256(secret)
        at = utc_now()
        expires_at = None if expires is None else _format_time(_parse_time(at) + expires)
        with mutation(context, at=at) as unit:
            if unit.tx.tokens.find(token_id) is not None:
                continue  # 48 random bits met an existing id: draw another
            record = TokenRecord(
                id=token_id,
                name=name,
                role=chosen.value,
                models=patterns,
                created_at=unit.at,
                created_by=unit.actor,
                expires_at=expires_at,
                revoked_at=None,
                revoked_by=None,
                revoke_reason=None,
            )
            unit.tx.tokens.insert(record, digest)
            # Never the secret. Its digest, yes: `audit verify` then finds a token row added
            # or altered outside mlprov (a swapped digest would take the token over), and
            # the digest of 256 random bits tells its readers nothing (docs/adr/0042).
            unit.audit(
                "token.create",
                f"token:{token_id}",
                {
                    "id": token_id,
                    "name": name,
                    "role": chosen.value,
                    "models": list(patterns),
                    "expires_at": expires_at,
                    "secret_sha256": digest,
                },
            )
        return IssuedToken(record, secret)
    raise ConflictError("could not draw an unused token id; try again")  # pragma: no cover


def tokens(context: RegistryContext) -> list[TokenRecord]:
    """Every token, oldest first, without secrets."""
    with context.metadata.read() as tx:
        return tx.tokens.all()


def revoke_token(context: RegistryContext, token_id: str, *, reason: str) -> TokenRecord:
    """Revoke a token from now on (audited); a revoked token never authenticates again."""
    _check_token_id(token_id)
    if not isinstance(reason, str) or not reason.strip() or len(reason) > _MAX_REASON:
        raise InvalidInputError("give the reason for revoking the token (--reason TEXT)")
    if "\x00" in reason or "\n" in reason or "\r" in reason:
        raise InvalidInputError("the reason must be one line of text")
    with mutation(context) as unit:
        found = unit.tx.tokens.find(token_id)
        if found is None:
            raise NotFoundError(f"token {token_id} not found")
        if found.revoked_at is not None:
            raise ConflictError(f"token {token_id} is already revoked ({found.revoked_at})")
        # Writers are serialised, so the row read above is the row updated; the guard in
        # the update is a second line, and losing it is the same conflict.
        if not unit.tx.tokens.revoke(token_id, at=unit.at, actor=unit.actor, reason=reason):
            raise ConflictError(f"token {token_id} is already revoked")
        unit.audit(
            "token.revoke",
            f"token:{token_id}",
            {"id": token_id, "name": found.name, "role": found.role},
            reason,
        )
        revoked = unit.tx.tokens.find(token_id)
    assert revoked is not None
    if context.token_cache is not None:
        context.token_cache.forget(token_id)
    return revoked


def authenticate(
    context: RegistryContext, secret: str, *, now: datetime | None = None
) -> Principal:
    """The principal a presented secret stands for; AuthenticationError (one line, never
    the secret) when it is malformed, unknown, wrong, expired or revoked. Reads only."""
    principal = _authenticate(context, secret, now=now, read_store=True)
    assert principal is not None  # the store was read
    return principal


def authenticate_cached(context: RegistryContext, secret: str) -> Principal | None:
    """As :func:`authenticate` from a cached token row, without touching the store (a
    server answers this on its event loop); None when the row is not cached."""
    return _authenticate(context, secret, now=None, read_store=False)


def _authenticate(
    context: RegistryContext, secret: str, *, now: datetime | None, read_store: bool
) -> Principal | None:
    match = _SECRET.match(secret) if isinstance(secret, str) else None
    if match is None:
        raise AuthenticationError(
            "malformed token: expected mlp_tok_ followed by its id and secret "
            "(as `mlprov token create` printed it)"
        )
    token_id = match.group(1)
    cache = context.token_cache
    found = cache.get(token_id) if cache is not None else None
    if found is None:
        if not read_store:
            return None
        read_at = time.monotonic()  # before the read: a row is never kept past its age
        with context.metadata.read() as tx:
            found = tx.tokens.credentials(token_id)
        if found is not None and cache is not None:
            cache.put(token_id, found, read_at)
    # Unknown id and wrong secret read the same, so the reply does not tell which ids
    # exist; the digest is compared in constant time.
    if found is None or not hmac.compare_digest(_secret_sha256(secret), found[1]):
        raise AuthenticationError(f"token {token_id} is unknown or its secret is wrong")
    record = found[0]
    if record.revoked_at is not None:
        raise AuthenticationError(f"token {token_id} was revoked at {record.revoked_at}")
    if record.expired(now):
        raise AuthenticationError(f"token {token_id} expired at {record.expires_at}")
    try:
        role = Role(record.role)
    except ValueError:
        # Fail closed on a row this version cannot read (an unknown or altered role).
        raise AuthenticationError(f"token {token_id} has an unknown role") from None
    return Principal(name=record.name, role=role, models=record.models, token_id=record.id)
