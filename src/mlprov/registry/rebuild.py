"""``mlprov rebuild-check REF PATH``: is a re-derived artefact the registered version?

PATH is hashed with the one hashing module (:func:`mlprov.hashing.hash_model`), with the
registered version's digest algorithm and the same files left out as at registration
(``model.sig``, ignore paths), before anything is written; the pure comparison engine
then says whether the files and digests are the same, or exactly which differ. With a
signer the result is recorded as an in-toto attestation about the registered version
(subject: its model digest) of predicate type :data:`REBUILD_PREDICATE_TYPE`, signed
outside the write transaction (:func:`mlprov.registry.evidence.attest`), whatever the
result: a failed rebuild is evidence too. docs/diff.md describes the predicate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.comparison import FileComparison, compare_files
from mlprov.errors import InvalidInputError
from mlprov.manifest import Manifest
from mlprov.records import Evidence
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, utc_now

if TYPE_CHECKING:
    from mlprov.signing import Signer

__all__ = ["REBUILD_PREDICATE_TYPE", "RebuildCheck", "compare_rebuild", "rebuild_check"]

#: The predicate type of a recorded rebuild check (docs/diff.md, "The rebuild-check
#: attestation").
REBUILD_PREDICATE_TYPE = "https://mlprov.dev/rebuild-check/v1"


@dataclass(frozen=True)
class RebuildCheck:
    """A registered version's files against a re-derived copy's."""

    ref: str
    registered_digest: str
    rebuilt_digest: str
    files: FileComparison
    checked_at: str
    attestation: Evidence | None = None

    @property
    def identical(self) -> bool:
        return self.files.identical

    def predicate(self) -> dict[str, Any]:
        """The attestation's predicate (docs/diff.md): no local path, only digests."""
        return {
            "version": self.ref,
            "result": "identical" if self.identical else "different",
            "registeredDigest": self.registered_digest,
            "rebuiltDigest": self.rebuilt_digest,
            "checkedAt": self.checked_at,
            "files": self.files.to_json("registered", "rebuilt"),
        }

    def to_json(self) -> dict[str, Any]:
        value = self.predicate()
        value["attestation"] = self.attestation.to_json() if self.attestation else None
        return value


def rebuild_check(
    context: RegistryContext,
    ref: ModelRef | str,
    path: Path,
    *,
    signer: Signer | None = None,
    ignore_paths: Sequence[str | Path] = (),
    allow_symlinks: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RebuildCheck:
    """Hash ``path`` and compare it with version ``ref``'s recorded manifest; with
    ``signer``, sign the result and store it with the version (module docstring)."""
    from mlprov.registry.evidence import attest  # noqa: PLC0415
    from mlprov.registry.versions import get_version, manifest  # noqa: PLC0415

    version = get_version(context, ref)  # an unknown reference fails before any hashing
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise InvalidInputError(f"{path}: no such file or folder to compare with {version.ref}")
    registered = manifest(context, ModelRef(version.name, version=version.version))
    result = compare_rebuild(
        version.ref,
        version.digest,
        registered,
        path,
        ignore_paths=ignore_paths,
        allow_symlinks=allow_symlinks,
        progress=progress,
    )
    if signer is None:
        return result
    stored = attest(context, version.ref, REBUILD_PREDICATE_TYPE, result.predicate(), signer)
    return replace(result, attestation=stored)


def compare_rebuild(
    ref: str,
    registered_digest: str,
    registered: Manifest,
    path: Path,
    *,
    ignore_paths: Sequence[str | Path] = (),
    allow_symlinks: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RebuildCheck:
    """Hash ``path`` with ``registered``'s algorithm, leaving out what registration
    leaves out, and compare it with ``registered`` (the version ``ref``'s manifest: the
    registry's record here, the signed one in client mode)."""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.hashing import hash_model  # noqa: PLC0415

    if not path.exists() and not path.is_symlink():
        raise InvalidInputError(f"{path}: no such file or folder to compare with {ref}")
    ignores = signing.relative_ignore_paths(
        path, ignore_paths, signing.default_signature_path(path)
    )
    rebuilt = hash_model(
        path,
        registered.algorithm,
        ignore_paths=ignores,
        allow_symlinks=allow_symlinks,
        progress=progress,
    )
    return RebuildCheck(
        ref=ref,
        registered_digest=registered_digest,
        rebuilt_digest=str(rebuilt.digest),
        files=compare_files(registered, rebuilt),
        checked_at=utc_now(),
    )
