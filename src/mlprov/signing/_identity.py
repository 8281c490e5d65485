"""Who signed: the identity a signer claims and a verifier establishes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SignerIdentity"]


@dataclass(frozen=True)
class SignerIdentity:
    """The signer of an OMS signature, as established by verification (or by signing).

    ``method`` is ``key``, ``certificate`` or ``sigstore``. ``subject`` is the key hint
    (hex SHA-256 of the public key PEM), the leaf certificate's subject, or the Sigstore
    identity (e-mail, URI); ``issuer`` is None, the leaf's issuer, or the OIDC issuer.
    ``fingerprint`` is the key hint or the hex SHA-256 of the leaf certificate (DER).
    ``str()`` gives one stable line, e.g. ``key:e8450dec...`` or
    ``sigstore:alice@example.com (https://accounts.google.com)``.
    """

    method: str
    subject: str
    issuer: str | None = None
    fingerprint: str | None = None

    def __str__(self) -> str:
        if self.method == "key":
            return f"key:{self.subject}"
        if self.issuer:
            return f"{self.method}:{self.subject} ({self.issuer})"
        return f"{self.method}:{self.subject}"

    def to_json_value(self) -> dict[str, str | None]:
        return {
            "method": self.method,
            "subject": self.subject,
            "issuer": self.issuer,
            "fingerprint": self.fingerprint,
            "display": str(self),
        }
