"""Signed alias resolution: the registry's signed answer to "what is ``name@alias`` now".

A resolution statement is an in-toto Statement v1 whose subject is the version's
manifest digest and whose predicate (``https://mlprov.dev/resolution/v1``) names the
registry, the alias, the version, its manifest digest, the alias generation, when it was
issued and when it expires. It is signed in DSSE inside a Sigstore bundle by the
registry's key, with the same signers and trust objects as every other attestation
(:mod:`mlprov.signing`), so the bytes verify with any DSSE verifier.

It plays the part of TUF's timestamp and snapshot metadata (TUF specification v1.0,
"5.4 Update the timestamp role", "5.5 Update the snapshot role"): the generation is the
version number a client must never see go down (rollback), and the expiry bounds how long
a frozen registry or a replaying mirror can keep a client on an old answer (freeze). The
client-side memory of what was seen is :class:`~mlprov.serving.ResolutionState`.

The payload is deterministic: the same inputs give the same statement bytes (canonical
JSON, times in one UTC format). The ECDSA signature over it is randomised, as
``cryptography`` makes it, so two signatures of one statement differ; verifiers digest
and keep the exact bundle bytes they were given (STYLE.md, 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from mlprov.canonical import canonical_json
from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import (
    InvalidInputError,
    MalformedDocumentError,
    MalformedSignatureError,
    SignatureError,
    VerificationError,
)
from mlprov.manifest import Digest
from mlprov.refs import validate_alias, validate_model_name

if TYPE_CHECKING:
    from mlprov.signing import Signer, SignerIdentity, Trust

__all__ = [
    "MAX_RESOLUTION_TTL",
    "RESOLUTION_PREDICATE_TYPE",
    "Resolution",
    "registry_id_of",
    "resolution_statement",
    "sign_resolution",
    "verify_resolution",
]

RESOLUTION_PREDICATE_TYPE = "https://mlprov.dev/resolution/v1"
_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

#: The longest a resolution may stay valid: an answer that lives longer than a day lets
#: a frozen registry hold a fleet on it for that long (TUF's timestamp role expires in
#: about a day by default for the same reason).
MAX_RESOLUTION_TTL = timedelta(days=1)

#: The one time format of resolution statements: UTC, microseconds, ``Z``.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")

_PREDICATE_FIELDS = frozenset(
    {
        "registryId",
        "name",
        "alias",
        "version",
        "manifestDigest",
        "generation",
        "issuedAt",
        "expiresAt",
    }
)


@dataclass(frozen=True)
class Resolution:
    """A resolution statement as signed: what ``name@alias`` named when it was issued.

    From :func:`verify_resolution` it is verified (``signer`` is who the trust
    established); the exact bundle bytes are kept in ``bundle``.
    """

    registry_id: str
    name: str
    alias: str
    version: int
    manifest_digest: str
    generation: int
    issued_at: datetime
    expires_at: datetime
    signer: SignerIdentity | None = None
    #: The exact statement bytes (the DSSE payload) and the bundle they came in.
    payload: bytes = field(default=b"", repr=False, compare=False)
    bundle: bytes = field(default=b"", repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}"

    def to_json(self) -> dict[str, Any]:
        return {
            "registry_id": self.registry_id,
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "manifest_digest": self.manifest_digest,
            "generation": self.generation,
            "issued_at": _format_time(self.issued_at),
            "expires_at": _format_time(self.expires_at),
            "signer": str(self.signer) if self.signer is not None else None,
        }


def _format_time(when: datetime) -> str:
    if when.tzinfo is None:
        raise InvalidInputError("resolution times must be timezone-aware (UTC)")
    return when.astimezone(timezone.utc).strftime(_TIME_FORMAT)


def _parse_time(value: object, what: str) -> datetime:
    if not isinstance(value, str) or not _TIME.match(value):
        raise MalformedSignatureError(
            f"the resolution's {what} is not a UTC time like 2026-01-31T12:00:00.000000Z"
        )
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError as e:
        raise MalformedSignatureError(f"the resolution's {what} is not a valid time") from e


def registry_id_of(identity: SignerIdentity) -> str:
    """The stable id of the registry whose key or certificate ``identity`` is:
    ``METHOD:FINGERPRINT`` (the key hint, or the certificate's SHA-256). A client keeps
    one rollback ratchet per registry id, so rotating the registry key starts a new one
    (TUF's answer to a fast-forward attack with a leaked key is the same)."""
    if not identity.fingerprint:
        raise InvalidInputError(
            f"{identity} has no stable fingerprint to name a registry by: sign resolutions "
            "with the registry's key or certificate, not a keyless identity"
        )
    return f"{identity.method}:{identity.fingerprint}"


def _signer_identity(signer: Signer) -> SignerIdentity:
    from mlprov.signing import CertificateSigner, KeySigner  # noqa: PLC0415

    if isinstance(signer, KeySigner | CertificateSigner):
        return signer.identity
    raise InvalidInputError(
        "resolutions are signed with the registry's key (--key) or certificate; a keyless "
        "(Sigstore) identity cannot name the registry before it signs"
    )


def resolution_statement(
    *,
    registry_id: str,
    name: str,
    alias: str,
    version: int,
    manifest_digest: str,
    generation: int,
    issued_at: datetime,
    expires_at: datetime,
) -> bytes:
    """The statement bytes that are signed: deterministic for the same inputs."""
    validate_model_name(name)
    validate_alias(alias)
    digest = Digest.parse(manifest_digest)
    if not registry_id or len(registry_id) > 256:
        raise InvalidInputError("a resolution needs the registry's id")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError(f"a resolution names a version number >= 1, not {version!r}")
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1:
        raise InvalidInputError(f"a resolution names a generation >= 1, not {generation!r}")
    if not expires_at > issued_at:
        raise InvalidInputError("a resolution must expire after it is issued")
    statement = {
        "_type": _STATEMENT_TYPE,
        "subject": [{"name": f"{name}@{alias}", "digest": {digest.algorithm: digest.hex}}],
        "predicateType": RESOLUTION_PREDICATE_TYPE,
        "predicate": {
            "registryId": registry_id,
            "name": name,
            "alias": alias,
            "version": version,
            "manifestDigest": str(digest),
            "generation": generation,
            "issuedAt": _format_time(issued_at),
            "expiresAt": _format_time(expires_at),
        },
    }
    return canonical_json(statement, "resolution statement")


def sign_resolution(
    signer: Signer,
    *,
    name: str,
    alias: str,
    version: int,
    manifest_digest: str,
    generation: int,
    issued_at: datetime,
    ttl: timedelta,
) -> bytes:
    """Sign a resolution with the registry's ``signer``; return the bundle bytes.

    The registry id is derived from the signer's key (:func:`registry_id_of`); ``ttl``
    is how long the answer stays valid (more than nothing, at most a day).
    """
    if not timedelta(0) < ttl <= MAX_RESOLUTION_TTL:
        raise InvalidInputError(
            f"a resolution stays valid more than nothing and at most {MAX_RESOLUTION_TTL}, "
            f"not {ttl}"
        )
    identity = _signer_identity(signer)
    payload = resolution_statement(
        registry_id=registry_id_of(identity),
        name=name,
        alias=alias,
        version=version,
        manifest_digest=manifest_digest,
        generation=generation,
        issued_at=issued_at,
        expires_at=issued_at + ttl,
    )
    return signer.sign(payload).bundle


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MalformedSignatureError(f"the resolution's {what} is not a number >= 1")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedSignatureError(f"the resolution's {what} is missing or not text")
    return value


def _parse_predicate(statement: dict[str, Any]) -> Resolution:
    if statement.get("_type") != _STATEMENT_TYPE:
        raise MalformedSignatureError("a resolution is an in-toto Statement v1")
    if statement.get("predicateType") != RESOLUTION_PREDICATE_TYPE:
        raise MalformedSignatureError(
            f"not a resolution statement (its predicate type must be {RESOLUTION_PREDICATE_TYPE})"
        )
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict) or set(predicate) != _PREDICATE_FIELDS:
        raise MalformedSignatureError(
            "the resolution's predicate must hold exactly " + ", ".join(sorted(_PREDICATE_FIELDS))
        )
    name = _text(predicate["name"], "name")
    alias = _text(predicate["alias"], "alias")
    try:
        validate_model_name(name)
        validate_alias(alias)
        digest = Digest.parse(_text(predicate["manifestDigest"], "manifestDigest"))
    except InvalidInputError as e:
        raise MalformedSignatureError(f"the resolution's predicate: {e.message}") from e
    subject = [{"name": f"{name}@{alias}", "digest": {digest.algorithm: digest.hex}}]
    if statement.get("subject") != subject:
        raise MalformedSignatureError(
            "the resolution's subject is not its alias and manifest digest"
        )
    issued_at = _parse_time(predicate["issuedAt"], "issuedAt")
    expires_at = _parse_time(predicate["expiresAt"], "expiresAt")
    if not expires_at > issued_at:
        raise MalformedSignatureError("the resolution expires before it was issued")
    return Resolution(
        registry_id=_text(predicate["registryId"], "registryId"),
        name=name,
        alias=alias,
        version=_positive_int(predicate["version"], "version"),
        manifest_digest=str(digest),
        generation=_positive_int(predicate["generation"], "generation"),
        issued_at=issued_at,
        expires_at=expires_at,
    )


def verify_resolution(
    data: bytes,
    trust: Trust,
    now: datetime,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> Resolution:
    """Verify a resolution bundle against the registry's ``trust`` and check it is valid
    at ``now``; return what it says (raising twin only: a resolution is used or refused).

    SignatureError: the signature does not verify with the trust (wrong key), or the
    statement names another registry than the key that signed it. MalformedSignatureError:
    the bundle or its statement cannot be read. VerificationError: it expired (a frozen
    answer) or was issued later than ``now`` allows (the clock skew of ``limits``).
    """
    from mlprov import signing  # noqa: PLC0415 - cryptography only when verifying

    if now.tzinfo is None:
        raise InvalidInputError("verify a resolution at a timezone-aware time (UTC)")
    try:
        verified = signing.verify_attestation(data, trust, limits=limits, now=now)
    except MalformedDocumentError as e:
        if isinstance(e, MalformedSignatureError):
            raise
        raise MalformedSignatureError(f"the resolution does not parse: {e.message}") from e
    parsed = _parse_predicate(verified.statement)
    expected_id = registry_id_of(verified.signer)
    if parsed.registry_id != expected_id:
        raise SignatureError(
            f"the resolution names registry {parsed.registry_id[:80]!r} but was signed by "
            f"{expected_id}: it is not this registry's answer"
        )
    skew = timedelta(seconds=limits.clock_skew_seconds)
    if now >= parsed.expires_at:
        raise VerificationError(
            f"the resolution of {parsed.ref} (generation {parsed.generation}) expired at "
            f"{_format_time(parsed.expires_at)}: a frozen or replayed answer; ask the "
            "registry for a fresh one"
        )
    if parsed.issued_at > now + skew:
        raise VerificationError(
            f"the resolution of {parsed.ref} was issued at {_format_time(parsed.issued_at)}, "
            "in the future: check the clocks"
        )
    return Resolution(
        registry_id=parsed.registry_id,
        name=parsed.name,
        alias=parsed.alias,
        version=parsed.version,
        manifest_digest=parsed.manifest_digest,
        generation=parsed.generation,
        issued_at=parsed.issued_at,
        expires_at=parsed.expires_at,
        signer=verified.signer,
        payload=verified.payload,
        bundle=bytes(data),
    )
