"""Configuration objects: where the registry lives, and the limits every parser obeys.

Limits live in one frozen object with safe defaults so that every parser of untrusted
input (bundles, envelopes, statements, manifests, configs) refuses oversized or deeply
nested documents the same way, before doing any expensive work.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_LIMITS", "Limits", "RegistryConfig", "current_actor", "default_home"]


@dataclass(frozen=True)
class Limits:
    """Bounds on untrusted input. Exceeding one is an InvalidInputError, never a crash.

    Documents (JSON, YAML) obey the first three through :mod:`mlprov.documents`.
    """

    #: Largest signature bundle, attestation or envelope accepted, in bytes.
    max_document_bytes: int = 16 * 1024 * 1024
    #: Deepest JSON nesting accepted in a document (OMS bundles need fewer than 10).
    max_json_depth: int = 64
    #: Longest number literal accepted in a document, in characters (a SHA-512 in decimal
    #: has 155 digits; CPython refuses integers of more than 4,300 digits).
    max_number_length: int = 200
    #: Most files one manifest may list.
    max_manifest_files: int = 1_000_000
    #: Deepest lineage walk (ancestors or descendants).
    max_lineage_depth: int = 64
    #: Largest pickle (raw, or one member of an archive) scanned for imports, in bytes; a
    #: larger one is recorded as ``pickle-import`` unscanned (docs/provenance.md).
    max_pickle_scan_bytes: int = 64 * 1024 * 1024
    #: Most bytes read from one artefact file's archive members while detecting formats.
    max_format_scan_bytes: int = 256 * 1024 * 1024
    #: Most members of one archive (zip) looked at; a longer member list is not scanned.
    max_archive_members: int = 100_000
    #: Deepest nesting of archives inside archives that is opened.
    max_archive_depth: int = 2
    #: Allowed clock skew when checking certificate validity, in seconds.
    clock_skew_seconds: int = 60
    #: Allowed digest algorithms for manifests.
    hash_algorithms: tuple[str, ...] = ("sha256", "blake2b", "blake3")


DEFAULT_LIMITS = Limits()


def is_server_uri(uri: str | None) -> bool:
    """Whether ``MLPROV_REGISTRY`` names a server (``http://`` or ``https://``): here, so
    a local command can tell without importing the HTTP client."""
    return uri is not None and uri.strip().lower().startswith(("http://", "https://"))


def default_home() -> Path:
    """``$MLPROV_HOME``, else ``~/.mlprov``."""
    env = os.environ.get("MLPROV_HOME")
    return Path(env).expanduser() if env else Path.home() / ".mlprov"


def current_actor() -> str:
    """Who is acting: ``$MLPROV_ACTOR``, else ``user@host`` from the operating system."""
    actor = os.environ.get("MLPROV_ACTOR", "").strip()
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class RegistryConfig:
    """Where a registry's metadata and artefact bytes live.

    ``metadata_uri`` defaults to ``sqlite:///$MLPROV_HOME/registry.db`` (or
    ``$MLPROV_REGISTRY``); ``artifact_uri`` to ``file://$MLPROV_HOME/blobs`` (or
    ``$MLPROV_ARTIFACTS``).
    """

    home: Path = field(default_factory=default_home)
    metadata_uri: str | None = None
    artifact_uri: str | None = None
    limits: Limits = DEFAULT_LIMITS

    @classmethod
    def from_environment(cls, home: Path | None = None) -> RegistryConfig:
        return cls(
            home=home if home is not None else default_home(),
            metadata_uri=os.environ.get("MLPROV_REGISTRY") or None,
            artifact_uri=os.environ.get("MLPROV_ARTIFACTS") or None,
        )

    @property
    def resolved_metadata_uri(self) -> str:
        return self.metadata_uri or f"sqlite:///{self.home / 'registry.db'}"

    @property
    def resolved_artifact_uri(self) -> str:
        return self.artifact_uri or (self.home / "blobs").as_uri()
