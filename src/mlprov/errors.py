"""The one exception tree of mlprov.

Every failure a user can cause or meet is an :class:`MlprovError`. Each class knows
its process exit code and renders a one-line message; the CLI prints that line and
exits with that code, and never shows a traceback unless ``--debug`` is given::

    MlprovError
    ├── VerificationError            exit 1  the evidence was checked and is wrong
    │   ├── DigestMismatchError              a file's bytes differ from the manifest
    │   ├── SignatureError                   a signature does not verify with the trust given
    │   ├── MalformedSignatureError          a signature bundle under verification does not parse
    │   │                                    or exceeds limits (also a MalformedDocumentError)
    │   └── AuditChainError                  the audit log's hash chain is broken
    ├── PolicyDenied                 exit 1  a gate refused a change
    ├── InvalidInputError            exit 2  the caller gave something malformed or unsafe
    │   ├── InvalidNameError                 a model name outside the allowed alphabet
    │   ├── InvalidReferenceError            a version reference that does not parse
    │   ├── UnsafePathError                  symlink escape, FIFO, device, unreadable file
    │   └── MalformedDocumentError           a bundle, envelope or statement that does not parse
    │       └── DocumentSyntaxError              ... because it is not JSON or YAML at all
    ├── ConflictError                exit 3  someone else changed the same thing first
    │   ├── PreconditionFailedError          ... before the call: the expected generation
    │   │                                    is not the current one (HTTP 412)
    │   └── BlobRemovedError                 ... mlprov gc removed a blob it had read
    ├── NotFoundError                exit 4  a model, version, alias or file does not exist
    ├── StorageError                 exit 5  the metadata store or artefact store failed
    ├── ConfigError                  exit 2  the registry is configured wrongly
    ├── AuthenticationError          exit 6  no credentials, or ones that are unknown,
    │                                        expired or revoked (HTTP 401)
    └── PermissionDeniedError        exit 6  the credentials are valid but their role or
                                             model patterns do not allow this (HTTP 403)

Each class also knows the HTTP status the server answers with (``http_status``): 422 for
bad input, 409 for a conflict, 404, 503 for storage, 403 for a policy denial (the request
was understood and refused by policy), 400 for a failed verification of what was sent.

"The signature is invalid" (:class:`VerificationError`, exit 1) and "I could not check"
(:class:`MalformedDocumentError`, :class:`StorageError`) are different errors on purpose.

Anything that is not an :class:`MlprovError` reaching the CLI is a bug in mlprov: the CLI
prints one line, ``mlprov: internal error: TYPE: MESSAGE (run with --debug for the
traceback)``, and exits 70 (``EX_SOFTWARE`` of sysexits.h).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONFLICT",
    "EXIT_INVALID",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_STORAGE",
    "EXIT_VERIFICATION",
    "AuditChainError",
    "AuthenticationError",
    "BlobRemovedError",
    "ConfigError",
    "ConflictError",
    "DigestMismatchError",
    "DocumentSyntaxError",
    "InvalidInputError",
    "InvalidNameError",
    "InvalidReferenceError",
    "MalformedDocumentError",
    "MalformedSignatureError",
    "MlprovError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyDenied",
    "PreconditionFailedError",
    "SignatureError",
    "StorageError",
    "UnsafePathError",
    "VerificationError",
]

EXIT_OK = 0
EXIT_VERIFICATION = 1
EXIT_INVALID = 2
EXIT_CONFLICT = 3
EXIT_NOT_FOUND = 4
EXIT_STORAGE = 5
EXIT_AUTH = 6


class MlprovError(Exception):
    """Base of every error mlprov raises on purpose."""

    exit_code: int = EXIT_INVALID
    #: What the HTTP server answers with (RFC 9110 section 15).
    http_status: int = 422

    def __init__(self, message: str) -> None:
        # One line, always: multi-line text from foreign libraries is folded.
        self.message = " ".join(str(message).split())
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class VerificationError(MlprovError):
    """The evidence was checked and it is wrong (digest, signature, chain)."""

    exit_code = EXIT_VERIFICATION
    http_status = 400


class DigestMismatchError(VerificationError):
    """A file's bytes do not match the digest the manifest records."""


class SignatureError(VerificationError):
    """A signature, certificate chain or identity does not verify against the given trust."""


class AuditChainError(VerificationError):
    """The audit log's hash chain does not recompute."""

    def __init__(self, message: str, *, sequence: int) -> None:
        super().__init__(message)
        self.sequence = sequence


class PolicyDenied(MlprovError):
    """A policy gate refused the change. ``reasons`` are the decision's failed
    requirements, one line each (the server returns them in the 403 body)."""

    exit_code = EXIT_VERIFICATION
    http_status = 403

    def __init__(self, message: str, *, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = tuple(" ".join(str(r).split()) for r in reasons)


class InvalidInputError(MlprovError):
    """The caller gave something malformed, unsafe or out of range."""

    exit_code = EXIT_INVALID


class InvalidNameError(InvalidInputError):
    """A model name outside ``[a-z0-9][a-z0-9._-]{0,127}``."""


class InvalidReferenceError(InvalidInputError):
    """A version reference that does not parse."""


class UnsafePathError(InvalidInputError):
    """A path that must not be read: an escaping symlink, a FIFO, a device, unreadable."""


class MalformedDocumentError(InvalidInputError):
    """A bundle, envelope, statement or config that cannot be parsed or exceeds limits."""


class DocumentSyntaxError(MalformedDocumentError):
    """A document that is not JSON or YAML at all (as opposed to one refused by a limit)."""


class ConflictError(MlprovError):
    """Someone else changed the same thing first (lost compare-and-set, duplicate)."""

    exit_code = EXIT_CONFLICT
    http_status = 409


class PreconditionFailedError(ConflictError):
    """The caller's precondition no longer holds (an alias's generation is not the one
    it read; HTTP ``If-Match``): re-read and retry. A race lost after the precondition
    held is a plain :class:`ConflictError`."""

    http_status = 412


class BlobRemovedError(ConflictError):
    """mlprov gc claimed a blob after a registration read it and before it committed:
    nothing was registered. ``digests`` names the blobs."""

    def __init__(self, message: str, digests: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.digests = tuple(digests)


class NotFoundError(MlprovError):
    """A model, version, alias, file or blob does not exist."""

    exit_code = EXIT_NOT_FOUND
    http_status = 404


class StorageError(MlprovError):
    """The metadata store or the artefact store failed (disk full, read-only, unreachable)."""

    exit_code = EXIT_STORAGE
    http_status = 503


class ConfigError(MlprovError):
    """The registry is configured wrongly (unknown URI scheme, bad environment)."""

    exit_code = EXIT_INVALID
    http_status = 500


class MalformedSignatureError(VerificationError, MalformedDocumentError):
    """A signature bundle presented for verification is malformed, oversized or too deep.

    The bundle is untrusted evidence: when it cannot even be parsed, the model is not
    verified, so this is a verification failure (exit 1) like any other tampering. It is
    also a :class:`MalformedDocumentError`, so code that parses bundles outside
    verification can catch it as bad input.
    """

    exit_code = EXIT_VERIFICATION


class AuthenticationError(MlprovError):
    """No credentials were given, or they are unknown, expired or revoked."""

    exit_code = EXIT_AUTH
    http_status = 401


class PermissionDeniedError(MlprovError):
    """Valid credentials whose role or model patterns do not allow the action."""

    exit_code = EXIT_AUTH
    http_status = 403
