"""Registering a version from blobs already in the artefact store (what the HTTP API does).

A client uploads each file's bytes as a blob (``PUT /api/v1/blobs/{sha256}``, refused
unless the bytes hash to the name), then asks for a version naming the blobs by path,
SHA-256 and size, optionally with an OMS signature it made itself. This module runs the
same three steps as :mod:`mlprov.registry.versions`, with the bytes coming from the store:

1. every input is checked (:func:`~mlprov.registry.versions.prepare_stored_version`);
   what gc has claimed so far is read (:func:`~mlprov.registry.gc.watch_blobs`: one read,
   no write; it waits while gc is removing one of the blobs); then every blob is read
   once from the artefact store (so its digest is checked), its size must be the one
   given, and its format is detected from the bytes read (in memory, or a temporary
   file for a large blob: :func:`~mlprov.registry.formats.detect_blob_format`);
2. a signature, when given, must parse, verify with the key or certificate it carries and
   sign exactly this manifest; whether its signer is *trusted* is the gate's question, as
   for ``mlprov sign``;
3. the version commits with :func:`~mlprov.registry.versions.commit_version`, which
   checks that gc claimed none of the blobs since step 1 looked (otherwise nothing is
   registered: :class:`~mlprov.errors.BlobRemovedError`; the blob upload leased the
   blob, so gc leaves an uploaded blob alone for a day); with an
   idempotency key the key is recorded in the same transaction, so a retried request
   with the same key returns the version the first one made and never makes a second.

Small files may come *inline* instead (``contents``, by path: the bytes in the request
itself, ADR 0057), so a small model is registered in one request. Their bytes are
checked against the size and SHA-256 listed for them in memory, their formats are
detected from those bytes, and they are stored as blobs only once every check above has
passed (so a refused request stores no blob), just before the commit. When gc removed
one of them meanwhile, they are stored again and all is done again (bounded); when it
removed an uploaded blob, the registration fails. As for an upload and a local
registration, a stored blob is never deleted when the commit then fails.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

from mlprov.canonical import canonical_json
from mlprov.errors import (
    BlobRemovedError,
    ConflictError,
    DigestMismatchError,
    InvalidInputError,
    NotFoundError,
    VerificationError,
)
from mlprov.manifest import SINGLE_FILE_NAME, Digest, FileEntry, Manifest, check_relative_path
from mlprov.records import FileFormat, ModelVersion
from mlprov.refs import validate_model_name
from mlprov.registry._context import IDEMPOTENCY_KEY, RegistryContext, check_idempotency_key
from mlprov.registry._unit import Mutation
from mlprov.registry.formats import detect_blob_format, detect_content_format
from mlprov.registry.gc import watch_blobs
from mlprov.registry.inputs import VersionInput
from mlprov.registry.types import NewEvidence, StoredFiles
from mlprov.registry.versions import commit_version, prepare_stored_version
from mlprov.store.registration_keys import RegistrationKey
from mlprov.store.versions import VersionKey

__all__ = ["IDEMPOTENCY_KEY", "UploadedFile", "register_uploaded"]

#: How often a registration is tried when gc removed one of its inline blobs meanwhile.
_ATTEMPTS = 3
_SHA256_HEX = re.compile(r"\A[0-9a-f]{64}\Z")
_ARTIFACT_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


@dataclass(frozen=True)
class UploadedFile:
    """One file of a version being registered from stored blobs."""

    path: str
    sha256: str
    size: int


class _RegisteredMeanwhile(Exception):
    """The idempotency key was recorded by a concurrent request: roll back, return its version."""


def register_uploaded(
    context: RegistryContext,
    name: str,
    files: Sequence[UploadedFile],
    info: VersionInput | None = None,
    *,
    artifact_name: str | None = None,
    signature: bytes | None = None,
    idempotency_key: str | None = None,
    contents: Mapping[str, bytes] | None = None,
) -> ModelVersion:
    """Register the next version of ``name`` from blobs already stored and, for the paths
    ``contents`` names, from the bytes given there (module docstring). With
    ``idempotency_key`` a repeat of the same request returns the same version; the same
    key with a different request is a ConflictError."""
    validate_model_name(name)
    info = info or VersionInput()
    shown = artifact_name if artifact_name is not None else name
    if not _ARTIFACT_NAME.match(shown):
        raise InvalidInputError(
            f"invalid artifact name {shown[:80]!r}: letters, digits, '.', '_', '-' only"
        )
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    checked = _checked_files(files, context.limits.max_manifest_files)
    inline = _checked_contents(checked, contents or {})
    # The inline bytes are not part of the digest: each file's SHA-256 stands for them.
    request = _request_digest(name, checked, info, shown, signature)
    if idempotency_key is not None:
        earlier = _earlier(context, name, idempotency_key, request)
        if earlier is not None:
            return earlier

    manifest = Manifest.of(
        "sha256", (FileEntry(f.path, Digest("sha256", f.sha256), f.size) for f in checked)
    )
    new_signature = _checked_signature(context, signature, manifest) if signature else None
    prepared = prepare_stored_version(context, name, info, shown, len(checked))
    digests = [f.sha256 for f in checked]
    inline_digests = {f.sha256 for f in checked if f.path in inline}

    def record_key(unit: Mutation, key: VersionKey) -> None:
        if idempotency_key is None:
            return
        model = unit.tx.models.find(name)
        assert model is not None  # the version was just inserted under it
        if unit.tx.registration_keys.find(model, idempotency_key) is not None:
            raise _RegisteredMeanwhile
        unit.tx.registration_keys.insert(
            model, RegistrationKey(idempotency_key, key.id, request, unit.at, unit.actor)
        )

    for attempt in range(_ATTEMPTS):
        # What gc has claimed so far is read before any blob is read or stored; the
        # commit checks that no claim on them came after (mlprov.registry.gc, ADR 0045).
        watch = watch_blobs(context, digests)
        formats = _detect_blob_formats(context, checked, inline)
        # Every check has passed: only now are the inline bytes stored (outside any
        # transaction, as an upload would have stored them).
        for data in inline.values():
            context.artifacts.put_bytes(data)
        stored = StoredFiles(
            manifest=manifest, blobs={f.path: f.sha256 for f in checked}, watch=watch
        )
        try:
            return commit_version(
                context,
                replace(prepared, formats=formats),
                stored,
                evidence_for=(lambda _draft: [new_signature]) if new_signature else None,
                within=record_key,
            )
        except _RegisteredMeanwhile:
            assert idempotency_key is not None
            earlier = _earlier(context, name, idempotency_key, request)
            if earlier is None:  # pragma: no cover - keys are never deleted
                raise ConflictError(f"{name}: idempotency key changed meanwhile; retry") from None
            return earlier
        except BlobRemovedError as e:
            # gc removed a blob after it was looked at. Inline bytes are here to store
            # again, so all is done again; an uploaded blob must be uploaded again.
            if attempt + 1 == _ATTEMPTS or not set(e.digests) <= inline_digests:
                raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _checked_files(files: Sequence[UploadedFile], most: int) -> list[UploadedFile]:
    if not files:
        raise InvalidInputError("a version needs at least one file")
    if len(files) > most:
        raise InvalidInputError(f"{len(files)} files exceed the limit of {most}")
    seen: set[str] = set()
    for item in files:
        check_relative_path(item.path)
        if item.path == SINGLE_FILE_NAME and len(files) > 1:
            raise InvalidInputError("path '.' names a single-file model: give no other files")
        if item.path in seen:
            raise InvalidInputError(f"file {item.path[:200]!r} is listed twice")
        seen.add(item.path)
        if not _SHA256_HEX.match(item.sha256):
            raise InvalidInputError(f"{item.path[:200]}: sha256 must be 64 lower-case hex digits")
        if item.size < 0:
            raise InvalidInputError(f"{item.path[:200]}: size must not be negative")
    # Paths that are both a file and a folder (a and a/b) cannot be installed.
    for path in seen:
        parts = path.split("/")
        for cut in range(1, len(parts)):
            if "/".join(parts[:cut]) in seen:
                raise InvalidInputError(f"{path[:200]!r} is inside another listed file")
    return sorted(files, key=lambda f: f.path)


def _checked_contents(
    files: Sequence[UploadedFile], contents: Mapping[str, bytes]
) -> dict[str, bytes]:
    """The inline bytes by path, each of the size and SHA-256 its file lists."""
    listed = {f.path: f for f in files}
    for path, data in contents.items():
        item = listed.get(path)
        if item is None:
            raise InvalidInputError(f"inline content for {path[:200]!r}, which is not listed")
        if len(data) != item.size:
            raise InvalidInputError(
                f"{path[:200]}: the inline content has {len(data)} bytes, not {item.size}"
            )
        actual = hashlib.sha256(data).hexdigest()
        if actual != item.sha256:
            raise DigestMismatchError(
                f"{path[:200]}: the inline content hashes to sha256:{actual}, "
                f"not sha256:{item.sha256}; nothing kept"
            )
    return dict(contents)


def _request_digest(
    name: str,
    files: Sequence[UploadedFile],
    info: VersionInput,
    artifact_name: str,
    signature: bytes | None,
) -> str:
    """What makes two registration requests the same one: everything they record."""
    document = {
        "name": name,
        "artifact_name": artifact_name,
        "files": [asdict(f) for f in files],
        "info": asdict(info),
        "signature": hashlib.sha256(signature).hexdigest() if signature else None,
    }
    return f"sha256:{hashlib.sha256(canonical_json(document, 'registration')).hexdigest()}"


def _earlier(context: RegistryContext, name: str, key: str, request: str) -> ModelVersion | None:
    """The version an earlier request under ``key`` made, if any."""
    with context.metadata.read() as tx:
        model = tx.models.find(name)
        found = tx.registration_keys.find(model, key) if model is not None else None
        if found is None:
            return None
        if found.request_digest != request:
            raise ConflictError(
                f"{name}: idempotency key {key!r} was used for a different registration"
            )
        version = tx.versions.by_id(found.version_id)
        assert version is not None  # foreign key
        return tx.versions.record(version)


def _checked_signature(context: RegistryContext, bundle: bytes, manifest: Manifest) -> NewEvidence:
    """An OMS signature of exactly ``manifest`` whose signature verifies with the key or
    certificate it carries (its signer's trust is the gate's to judge)."""
    from mlprov import signing  # noqa: PLC0415

    inspected = signing.inspect_attestation(bundle, limits=context.limits)
    if inspected.predicate_type != signing.PREDICATE_TYPE:
        raise VerificationError(
            f"the signature is not an OMS model signature (predicate "
            f"{inspected.predicate_type[:80]!r})"
        )
    statement = signing.inspect_signature(bundle, context.limits).statement
    try:
        signing.match_manifest(statement.manifest, manifest)
    except VerificationError as e:
        raise VerificationError(f"the signature is not of these files: {e.message}") from e
    return NewEvidence(
        "signature",
        signing.BUNDLE_MEDIA_TYPE,
        signing.PREDICATE_TYPE,
        bundle,
        str(inspected.carried.signer),
    )


def _detect_blob_formats(
    context: RegistryContext, files: Sequence[UploadedFile], inline: Mapping[str, bytes]
) -> list[FileFormat]:
    """Read each blob once (the artefact store checks its digest), check its size is the
    one given and detect its format from those bytes; an inline file's format is
    detected from its bytes in the request. Path order, as ``files``."""
    found = []
    for item in files:
        if item.path in inline:
            found.append(detect_content_format(context, item.path, inline[item.path]))
            continue
        if not context.artifacts.exists(item.sha256):
            raise NotFoundError(
                f"{item.path[:200]}: blob {item.sha256} is not stored; upload it first"
            )
        found.append(detect_blob_format(context, item.path, item.sha256, item.size))
    return found
