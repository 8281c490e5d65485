""":class:`HttpRegistry`: the registry's API over the REST API of ``mlprov serve``.

Everything that needs a key happens here, in the client: models are hashed and signed
locally, approvals and waivers are signed locally, and a download is verified locally
(every blob hashed while it is written, the manifest matched against the signature, the
signature verified against the trust the caller gives). The server never sees a
private key and is never trusted for the bytes it sends.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlprov.canonical import canonical_json
from mlprov.client import _checks, _deployments, _diff
from mlprov.client._blob_stream import receive_blob, write_new
from mlprov.client._transport import Transport
from mlprov.config import is_server_uri
from mlprov.errors import (
    ConflictError,
    DigestMismatchError,
    InvalidInputError,
    MalformedDocumentError,
    MlprovError,
    NotFoundError,
    PolicyDenied,
    StorageError,
    VerificationError,
)
from mlprov.lineage import LineageGraph
from mlprov.manifest import SINGLE_FILE_NAME, Digest, FileEntry, Manifest, check_relative_path
from mlprov.records import (
    AliasEvent,
    AliasState,
    AuditEntry,
    Deployment,
    DeploymentMember,
    DeploymentVersion,
    Evidence,
    ModelVersion,
    RegisteredModel,
    Revocation,
    Stage,
    StageEvent,
    StoredFile,
    StoredPolicySet,
)
from mlprov.refs import LATEST, ModelRef

# The value types only, from the modules that define them: importing the facade or a
# use-case module would load the store and SQLAlchemy, which a client never uses (ADR 0049).
from mlprov.registry.api import ProgressCallback
from mlprov.registry.inputs import VersionInput
from mlprov.registry.types import (
    AliasStatus,
    Approval,
    EvidenceCheck,
    ImportedArchive,
    SignedVersion,
    VerifiedDocument,
    VerifiedInstall,
    Waiver,
)

if TYPE_CHECKING:
    from mlprov.audit import Checkpoint
    from mlprov.comparison import DeploymentDiff, VersionDiff
    from mlprov.registry import RebuildCheck
    from mlprov.registry.api import RegistryApi
    from mlprov.registry.archive_writing import ExportedArchive
    from mlprov.serving import Resolution, ResolutionState
    from mlprov.signing import Signer, Trust, VerificationReport, VerifiedSignature
    from mlprov.verification import CheckResult
    from mlprov.verification import VerificationReport as CheckedReport

__all__ = [
    "DeploymentReport",
    "HttpRegistry",
    "RemoteDeploymentPull",
    "RemotePull",
    "ResolutionCheck",
    "is_server_uri",
]

_CHUNK = 1024 * 1024
#: Files up to this size go inline in a registration request, up to _INLINE_TOTAL bytes
#: in all (about 1.4 MiB of base64, well under the server's default 16 MiB body limit).
_INLINE_FILE = 256 * 1024
_INLINE_TOTAL = 1024 * 1024
_SIGNATURE_FILE = "model.sig"


def _coerce(ref: ModelRef | str) -> ModelRef:
    return ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)


def _segment(text: str) -> str:
    return quote(text, safe="")


def _imported_deployment(data: Any) -> DeploymentVersion | None:
    """The deployment release of an import's answer (``POST /api/v1/imports``), if any."""
    if data is None:
        return None
    return DeploymentVersion(
        deployment=str(data["deployment"]),
        version=int(data["version"]),
        members=tuple(
            DeploymentMember(str(m["role"]), str(m["model"]), int(m["version"]), str(m["digest"]))
            for m in data["members"]
        ),
        meta={str(k): str(v) for k, v in dict(data["metadata"]).items()},
        bundle_digest=str(data["bundle_digest"]),
        signer=str(data["signer"]),
        created_at=str(data["created_at"]),
        created_by=str(data["created_by"]),
    )


def _model_version(data: Any) -> ModelVersion:
    value = dict(data)
    value["stage"] = value.get("stage") or Stage.NONE.value
    aliases = value.get("aliases") or {}
    value["aliases"] = sorted(aliases) if isinstance(aliases, dict) else list(aliases)
    return ModelVersion.model_validate(value, strict=False)


def _stage_event(data: Any) -> StageEvent:
    value = dict(data)
    value["from_stage"] = value.get("from_stage") or Stage.NONE.value
    value["to_stage"] = value.get("to_stage") or Stage.NONE.value
    return StageEvent.model_validate(value, strict=False)


def _audit_entry(data: Any) -> AuditEntry:
    value = dict(data)
    details = value.get("details")
    # The store keeps the canonical JSON text the chain hashes; the API sends its object.
    value["details"] = canonical_json(details, "audit details").decode() if details else ""
    return AuditEntry.model_validate(value, strict=False)


def _revocation(data: Any, bundle: bytes) -> Revocation:
    return Revocation(
        kind=str(data["kind"]),
        value=str(data["value"]),
        reason=str(data["reason"]),
        at=str(data["at"]),
        actor=str(data["actor"]),
        signer=str(data["signer"]),
        bundle=bundle,
    )


def _manifest(data: Any) -> Manifest:
    return Manifest.of(
        str(data["algorithm"]),
        (
            FileEntry(str(f["path"]), Digest.parse(str(f["digest"])), int(f["size"]))
            for f in data["files"]
        ),
    )


def _policy_set(data: Any) -> StoredPolicySet:
    return StoredPolicySet(
        version=int(data["version"]),
        digest=str(data["digest"]),
        applied_at=str(data["applied_at"]),
        applied_by=str(data["applied_by"]),
        reason=str(data["reason"]),
        files={str(k): str(v).encode("utf-8") for k, v in data["files"].items()},
    )


@dataclass(frozen=True)
class ResolutionCheck:
    """How :meth:`HttpRegistry.pull` checks the server's signed resolution: the
    registry's key (``trust``), the client's memory of generations seen (``state``), and
    optionally a statement obtained elsewhere instead of fetching one."""

    trust: Trust
    state: ResolutionState
    statement: bytes | None = None


@dataclass(frozen=True)
class RemotePull:
    """What :meth:`HttpRegistry.pull` installed, the server's decision that allowed it,
    and the signed resolution it followed (None without a :class:`ResolutionCheck`)."""

    install: VerifiedInstall
    policy_digest: str | None
    message: str | None
    resolution: Resolution | None = None

    @property
    def version(self) -> ModelVersion:
        return self.install.version

    @property
    def path(self) -> Path:
        return self.install.path


@dataclass(frozen=True)
class DeploymentReport:
    """:meth:`HttpRegistry.verify_deployment`'s answer: the version checked and the
    checks run here (the bundle statement's, then each member's)."""

    version: DeploymentVersion
    report: CheckedReport


@dataclass(frozen=True)
class RemoteDeploymentPull:
    """What :meth:`HttpRegistry.pull_deployment` installed (``path/ROLE/`` per member and
    ``path/deployment.sig``), the checks run here, and the server's decision."""

    version: DeploymentVersion
    path: Path
    report: CheckedReport
    policy_digest: str | None
    message: str | None


class HttpRegistry:
    """The registry's API (:class:`mlprov.registry.RegistryApi`) against ``mlprov serve``.

    ``base_url`` is the server (``https://registry.example:8080``), ``token`` a bearer
    token from ``mlprov token create``. ``timeout`` bounds each request's connect and
    read waits (seconds); ``retries`` is how often a request that is safe to repeat is
    sent again after a connection error or 502/503/504 (see
    :mod:`mlprov.client._transport`).
    """

    #: Entries asked for per page of the audit chain (the server's most is 5000).
    audit_page: int = 5000

    def __init__(
        self, base_url: str, token: str | None, *, timeout: float = 60.0, retries: int = 3
    ) -> None:
        if not is_server_uri(base_url):
            raise InvalidInputError(f"{base_url[:100]!r} is not an http:// or https:// URL")
        self._transport = Transport(base_url, token, timeout=timeout, retries=retries)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def actor(self) -> str:
        # The server records the token's principal; the client does not know its name.
        return f"the token's principal at {self.base_url}"

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> HttpRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> Any:
        return self._transport.json("GET", path, params=params)

    def _model_path(self, name: str) -> str:
        return f"/api/v1/models/{_segment(name)}"

    def _version_path(self, ref: ModelRef | str) -> str:
        """The version's URL; an alias or ``latest`` is resolved first (once)."""
        parsed = _coerce(ref)
        number = parsed.version
        if number is None:
            number = self.get_version(parsed).version
        return f"{self._model_path(parsed.name)}/versions/{number}"

    # -- models ------------------------------------------------------------------------

    def create_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        body = {"name": name, "description": description, "tags": dict(tags or {})}
        data = self._transport.json("POST", "/api/v1/models", json=body)
        return RegisteredModel.model_validate(data, strict=False)

    def get_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.model_validate(self._get(self._model_path(name)), strict=False)

    def list_models(
        self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None
    ) -> list[RegisteredModel]:
        found = [
            RegisteredModel.model_validate(m, strict=False)
            for m in self._get("/api/v1/models", prefix=prefix)
        ]
        wanted = dict(tags or {})
        return [m for m in found if all(m.tags.get(k) == v for k, v in wanted.items())]

    def tag_model(
        self, name: str, changes: Mapping[str, str | None], *, reason: str = ""
    ) -> RegisteredModel:
        data = self._transport.json(
            "PATCH",
            f"{self._model_path(name)}/tags",
            json={"tags": dict(changes), "reason": reason},
        )
        return RegisteredModel.model_validate(data, strict=False)

    def describe_model(self, name: str, description: str) -> RegisteredModel:
        data = self._transport.json(
            "PUT", f"{self._model_path(name)}/description", json={"description": description}
        )
        return RegisteredModel.model_validate(data, strict=False)

    # -- versions ----------------------------------------------------------------------

    def get_version(self, ref: ModelRef | str) -> ModelVersion:
        parsed = _coerce(ref)
        if parsed.version is not None:
            return _model_version(
                self._get(f"{self._model_path(parsed.name)}/versions/{parsed.version}")
            )
        return _model_version(self._get("/api/v1/resolve", ref=str(parsed))["version"])

    resolve = get_version

    def list_versions(self, name: str) -> list[ModelVersion]:
        return [_model_version(v) for v in self._get(f"{self._model_path(name)}/versions")]

    def manifest(self, ref: ModelRef | str) -> Manifest:
        return _manifest(self._get(f"{self._version_path(ref)}/manifest"))

    def version_files(self, ref: ModelRef | str) -> list[StoredFile]:
        return [
            StoredFile(str(f["path"]), int(f["size"]), str(f["digest"]), str(f["blob"]))
            for f in self._get(f"{self._version_path(ref)}/files")
        ]

    def tag_version(
        self, ref: ModelRef | str, changes: Mapping[str, str | None], *, reason: str = ""
    ) -> ModelVersion:
        data = self._transport.json(
            "PATCH",
            f"{self._version_path(ref)}/tags",
            json={"tags": dict(changes), "reason": reason},
        )
        return _model_version(data)

    def describe_version(self, ref: ModelRef | str, description: str) -> ModelVersion:
        data = self._transport.json(
            "PUT", f"{self._version_path(ref)}/description", json={"description": description}
        )
        return _model_version(data)

    # -- registration --------------------------------------------------------------------

    def upload_blob(
        self, path: Path, sha256: str, size: int, progress: ProgressCallback | None = None
    ) -> None:
        """Stream one file to ``PUT /api/v1/blobs/{sha256}`` (retried: the same bytes
        under their own digest can be sent any number of times)."""

        def chunks() -> Iterator[bytes]:
            try:
                with path.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        if progress is not None:
                            progress(len(chunk))
                        yield chunk
            except OSError as e:
                raise StorageError(f"{path.name}: cannot read: {e.strerror}") from e

        self._transport.request(
            "PUT",
            f"/api/v1/blobs/{sha256}",
            retry=True,
            content=chunks,
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )

    def export(
        self,
        ref: ModelRef | str,
        to: Path,
        signer: Signer,
        *,
        with_ancestors: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ExportedArchive:
        """Write an archive of ``ref`` (a version or a deployment version) from what the
        server sends, every byte checked against its digest, its listing signed here
        with ``signer`` (:mod:`mlprov.client._exporting`); audited on the server."""
        # Loaded here: the archive writer (tarfile) is not what other commands need.
        from mlprov.client import _exporting  # noqa: PLC0415

        return _exporting.export_from_server(
            self, ref, to, signer, with_ancestors=with_ancestors, progress=progress
        )

    def promote(
        self,
        ref: ModelRef | str,
        to: RegistryApi,
        signer: Signer,
        *,
        alias: str | None = None,
        with_ancestors: bool = False,
        reason: str = "",
    ) -> ImportedArchive:
        """Export ``ref`` from this server into a scratch archive and import it into the
        registry ``to`` (its trust and, with ``alias``, its gate decide)."""
        from mlprov.registry.archive_writing import promote_through  # noqa: PLC0415

        return promote_through(
            lambda path: self.export(ref, path, signer, with_ancestors=with_ancestors),
            to,
            alias=alias,
            reason=reason,
        )

    def import_archive(self, path: Path, *, rename: str | None = None) -> ImportedArchive:
        """Upload an archive of ``mlprov export`` to ``POST /api/v1/imports``, where the
        server verifies it with its own trust before writing anything (retried: a repeated
        import of the same archive is a no-op)."""
        path = Path(path)
        try:
            size = path.stat().st_size
        except (FileNotFoundError, NotADirectoryError) as e:
            # As locally: a path naming no archive is bad input (exit 2).
            raise InvalidInputError(f"cannot read archive {path}: {e.strerror or e}") from e
        except OSError as e:
            raise StorageError(f"cannot read archive {path}: {e.strerror or e}") from e
        if not path.is_file():
            raise InvalidInputError(f"cannot read archive {path}: not a regular file")

        def chunks() -> Iterator[bytes]:
            try:
                with path.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        yield chunk
            except OSError as e:
                raise StorageError(f"cannot read archive {path}: {e.strerror}") from e

        answer = self._transport.json(
            "POST",
            "/api/v1/imports",
            retry=True,
            params={"as": rename},
            content=chunks,
            headers={"Content-Length": str(size), "Content-Type": "application/x-tar"},
        )
        return ImportedArchive(
            str(answer["archive_digest"]),
            _model_version(answer["version"]) if answer.get("version") is not None else None,
            tuple(answer["written"]),
            tuple(answer["present"]),
            str(answer["origin_registry"]),
            str(answer["origin_version"]),
            _imported_deployment(answer.get("deployment")),
        )

    def _hashed(
        self, path: Path, ignore_paths: list[str], allow_symlinks: bool, algorithm: str
    ) -> tuple[list[Any], Manifest]:
        from mlprov.hashing import hash_files, list_model_files  # noqa: PLC0415

        if algorithm != "sha256":
            raise InvalidInputError(
                f"--hash {algorithm[:20]}: a server stores blobs by SHA-256; use sha256"
            )
        files = list_model_files(path, ignore_paths=ignore_paths, allow_symlinks=allow_symlinks)
        return files, hash_files(files, "sha256")

    def _upload_and_register(
        self,
        name: str,
        files: list[Any],
        manifest: Manifest,
        artifact: str,
        info: VersionInput,
        signature: bytes | None,
        progress: ProgressCallback | None,
    ) -> ModelVersion:
        """Send the files' bytes, then register the version in one request with an
        ``Idempotency-Key`` made once here, so a retry never makes a second version.

        Small files go inline, in the registration request itself (ADR 0057: a small
        model is one request); every other file is uploaded as a blob first. A server
        whose body limit refuses the inline bytes (413) gets them as uploads instead."""
        by_name = {entry.path: entry for entry in manifest}
        inline = _inline_files(files, by_name)
        for item in files:
            if item.name in inline:
                if progress is not None:
                    progress(len(inline[item.name]))
                continue
            entry = by_name[item.name]
            size = entry.size if entry.size is not None else item.size
            self.upload_blob(item.path, entry.digest.hex, size, progress)
        listed = [{"path": e.path, "sha256": e.digest.hex, "size": e.size} for e in manifest]
        body: dict[str, Any] = {
            "files": [
                {**f, "content": base64.b64encode(inline[f["path"]]).decode("ascii")}
                if f["path"] in inline
                else f
                for f in listed
            ],
            "artifact_name": artifact,
            **_version_fields(info),
        }
        if signature is not None:
            body["signature"] = base64.b64encode(signature).decode("ascii")
        path = f"{self._model_path(name)}/versions"
        headers = {"Idempotency-Key": f"mlprov-{uuid.uuid4()}"}
        answer = self._transport.request(
            "POST", path, json=body, retry=True, headers=headers, accept=(413,) if inline else ()
        )
        if answer.status_code == 413:
            # Nothing was registered (the body was refused before it was read): the same
            # key, now naming uploaded blobs, is still unused.
            for item in files:
                if item.name in inline:
                    self.upload_blob(item.path, by_name[item.name].digest.hex, item.size, None)
            answer = self._transport.request(
                "POST", path, json=body | {"files": listed}, retry=True, headers=headers
            )
        try:
            return _model_version(answer.json())
        except ValueError:
            raise StorageError(
                f"the server at {self._transport.base_url} answered POST {path} with no JSON"
            ) from None

    def register(
        self,
        path: Path,
        name: str,
        info: VersionInput | None = None,
        *,
        hash_algorithm: str = "sha256",
        ignore_paths: Sequence[str | Path] = (),
        allow_symlinks: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ModelVersion:
        """Hash ``path`` here, upload its files and register an unsigned version."""
        from mlprov.signing import relative_ignore_paths  # noqa: PLC0415

        path = Path(path)
        ignores = relative_ignore_paths(path, ignore_paths, None)
        files, manifest = self._hashed(path, ignores, allow_symlinks, hash_algorithm)
        artifact = path.absolute().name or name
        return self._upload_and_register(
            name, files, manifest, artifact, info or VersionInput(), None, progress
        )

    def sign_and_register(
        self,
        path: Path,
        name: str,
        signer: Signer,
        info: VersionInput | None = None,
        *,
        with_documents: bool = True,
        **options: Any,
    ) -> SignedVersion:
        """Hash and sign ``path`` here, upload each file as a blob, then register the
        version with its signature in one request carrying an ``Idempotency-Key`` made
        once for this call: a retried registration returns the version the first one
        made. The detached signature is written (atomically) once the version exists.

        Options as for the local registry: ``hash_algorithm`` (sha256 only: the server
        stores blobs by SHA-256), ``ignore_paths``, ``allow_symlinks``,
        ``signature_path``, ``write_signature``, ``progress``.

        With ``with_documents`` (the default, as locally) the version's SLSA provenance,
        CycloneDX ML-BOM and model card are then built here from the record the server
        made, signed with the same signer and stored in one more request
        (``POST .../documents``, safe to retry), which the server accepts only if each is
        exactly the statement its record gives. If that request fails, the version stays
        registered and signed without them, and the error says so (docs/client.md).
        """
        from mlprov import signing  # noqa: PLC0415 - cryptography only when signing
        from mlprov.registry.signatures import register_with_signature_file  # noqa: PLC0415

        algorithm = str(options.pop("hash_algorithm", "sha256"))
        ignore_paths = list(options.pop("ignore_paths", ()) or ())
        allow_symlinks = bool(options.pop("allow_symlinks", False))
        signature_path = options.pop("signature_path", None)
        write_signature = bool(options.pop("write_signature", True))
        progress: ProgressCallback | None = options.pop("progress", None)
        if options:
            raise InvalidInputError(f"unknown option {sorted(options)[0]!r}")
        path = Path(path)
        info = info or VersionInput()
        if with_documents and info.builder_id is None:
            from mlprov.provenance import LOCAL_BUILDER_ID  # noqa: PLC0415

            # As locally: SLSA needs a builder id; this host unless the job names one.
            builder = os.environ.get("MLPROV_BUILDER_ID", "").strip() or LOCAL_BUILDER_ID
            info = dataclasses.replace(info, builder_id=builder)
        target = (
            Path(signature_path)
            if signature_path is not None
            else signing.default_signature_path(path)
        )
        ignores = signing.relative_ignore_paths(path, ignore_paths, target)
        files, manifest = self._hashed(path, ignores, allow_symlinks, algorithm)
        artifact = path.absolute().name or name
        statement = signing.build_statement(
            manifest, artifact, ignore_paths=ignores, allow_symlinks=allow_symlinks
        )
        signed = signer.sign(statement)
        # The server serves model.sig with the files (`download`) and as evidence.
        made = register_with_signature_file(
            lambda: self._upload_and_register(
                name, files, manifest, artifact, info, signed.bundle, progress
            ),
            signed,
            target if write_signature else None,
            fetch_hint="mlprov evidence {ref}",
        )
        if not with_documents:
            return made
        try:
            self.add_documents(made.version, signer)
        except MlprovError as e:
            raise type(e)(
                f"{made.version.ref} is registered and signed, but storing its provenance, "
                f"ML-BOM and card failed: {e.message}"
            ) from e
        return dataclasses.replace(made, version=self.get_version(made.version.ref))

    def add_documents(self, version: ModelVersion, signer: Signer) -> list[Evidence]:
        """Sign ``version``'s provenance, ML-BOM and model card here (built from its
        record, as a local ``sign`` does) and store them on the server, which checks
        each is exactly the statement its own record gives (``POST .../documents``; a
        repeat returns what the first stored, so it is retried)."""
        from mlprov.registry.evidence import version_statements  # noqa: PLC0415

        bundles = {
            kind: base64.b64encode(signer.sign(statement).bundle).decode("ascii")
            for kind, _predicate, statement in version_statements(version)
        }
        data = self._transport.json(
            "POST",
            f"{self._version_path(version.ref)}/documents",
            json={"documents": bundles},
            retry=True,
        )
        return [Evidence.model_validate(e, strict=False) for e in data]

    # -- signatures and evidence -------------------------------------------------------

    def signature_of(self, ref: ModelRef | str) -> bytes:
        return self._transport.request("GET", f"{self._version_path(ref)}/signature").content

    def evidence(self, ref: ModelRef | str, *, kind: str | None = None) -> list[Evidence]:
        return [
            Evidence.model_validate(e, strict=False)
            for e in self._get(f"{self._version_path(ref)}/evidence", kind=kind)
        ]

    def evidence_content(self, ref: ModelRef | str, digest: str) -> bytes:
        return self._transport.request(
            "GET", f"{self._version_path(ref)}/evidence/{_segment(digest)}"
        ).content

    def verify_version(
        self,
        ref: ModelRef | str,
        trust: Trust,
        *,
        path: Path | None = None,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> VerificationReport:
        """Verify a version here against ``trust`` (:mod:`mlprov.client._checks`): its
        signature, the server's manifest against the signed one, every stored file
        streamed and hashed (or the local copy at ``path``), and its own documents."""
        return _checks.verify_version(self, ref, trust, path=path, now=now, progress=progress)

    def verified_evidence(
        self, ref: ModelRef | str, trust: Trust | None = None, *, now: datetime | None = None
    ) -> list[EvidenceCheck]:
        """Every signature and attestation of a version, each checked here."""
        return _checks.verified_evidence(self, ref, trust, now=now)

    def verified_document(
        self,
        ref: ModelRef | str,
        kind: str,
        trust: Trust | None = None,
        *,
        now: datetime | None = None,
    ) -> VerifiedDocument:
        """The newest stored evidence of ``kind``, checked here before it is shown."""
        return _checks.verified_document(self, ref, kind, trust, now=now)

    def lineage(
        self, ref: ModelRef | str, *, descendants: bool = False, max_depth: int | None = None
    ) -> LineageGraph:
        """The server's walk of the stored lineage edges (``GET .../lineage``)."""
        params: dict[str, Any] = {"descendants": "true" if descendants else "false"}
        if max_depth is not None:
            params["max_depth"] = max_depth
        return _checks.graph_from_json(self._get(f"{self._version_path(ref)}/lineage", **params))

    def rebuild_check(
        self, ref: ModelRef | str, path: Path, trust: Trust, **options: Any
    ) -> RebuildCheck:
        """``rebuild-check REF PATH`` checked here: PATH against the manifest the stored
        signature signs, verified against ``trust`` (:func:`_checks.rebuild_check`;
        options ``signer``, ``ignore_paths``, ``allow_symlinks``, ``now``, ``progress``)."""
        return _checks.rebuild_check(self, ref, path, trust, **options)

    def diff(
        self,
        left: ModelRef | str,
        right: ModelRef | str,
        trust: Trust,
        *,
        now: datetime | None = None,
    ) -> VersionDiff | DeploymentDiff:
        """``mlprov diff A B`` here: the same comparison a local diff runs, on what the
        server sends (records, file lists, the exact evidence bytes), the evidence
        verified against ``trust`` as model signer, not the server's policy
        (:mod:`mlprov.client._diff`)."""
        return _diff.diff(self, left, right, trust, now=now)

    def attest(
        self, ref: ModelRef | str, predicate_type: str, predicate: dict[str, Any], signer: Signer
    ) -> Evidence:
        """Sign here the statement a local ``attest`` signs (subject: the version's model
        digest) and store it on the server (``POST .../attestations``), which checks it
        is exactly that statement; whose attestation counts is the gate's question."""
        from mlprov.registry.evidence import attestation_statement  # noqa: PLC0415

        version = self.get_version(ref)
        bundle = signer.sign(attestation_statement(version, predicate_type, predicate)).bundle
        return self._post_bundle(version.ref, "attestations", bundle)

    def sign_version(self, ref: ModelRef | str, signer: Signer) -> Evidence:
        """Sign here, over the manifest the server records, a version registered without
        a signature, and store it (``PUT .../signature``; a version already signed is a
        ConflictError, exit 3). The signature binds the files: ``verify REF --key`` and
        ``pull`` check the stored bytes against it."""
        from mlprov import signing  # noqa: PLC0415

        version = self.get_version(ref)
        if any(e.kind == "signature" for e in version.evidence):
            signer_name = [e for e in version.evidence if e.kind == "signature"][-1].signer
            raise ConflictError(f"{version.ref} is already signed (by {signer_name})")
        statement = signing.build_statement(self.manifest(version.ref), version.artifact_name)
        bundle = signer.sign(statement).bundle
        data = self._transport.json(
            "PUT",
            f"{self._version_path(version.ref)}/signature",
            content=lambda: bundle,
            headers={"Content-Type": "application/octet-stream"},
        )
        return Evidence.model_validate(data, strict=False)

    def attach(self, ref: ModelRef | str, bundle: bytes, trust: Trust, **options: Any) -> Evidence:
        """Verify a bundle signed elsewhere against ``trust`` here (as a local ``attach``
        does), then store it on the server, which verifies it again against its own
        registry's trust (the active policy set's signers) before storing it: an OMS
        signature as the version's signature, anything else as an attestation."""
        from mlprov import documents, signing  # noqa: PLC0415
        from mlprov.config import Limits  # noqa: PLC0415

        now: datetime | None = options.pop("now", None)
        if options:
            raise InvalidInputError(f"unknown option {sorted(options)[0]!r}")
        limits = Limits()
        parsed = signing.parse_bundle(bundle, limits)
        statement = documents.load_json(parsed.envelope.payload, "the bundle's statement", limits)
        version = self.get_version(ref)
        is_signature = (
            isinstance(statement, dict) and statement.get("predicateType") == signing.PREDICATE_TYPE
        )
        if is_signature:
            verified = signing.verify_bundle(bundle, trust, limits=limits, now=now)
            try:
                signing.match_manifest(verified.manifest, self.manifest(version.ref))
            except MlprovError as e:
                raise VerificationError(
                    f"the signature is not of {version.ref}: {e.message}"
                ) from e
            return self._post_bundle(version.ref, "signature", bundle)
        signing.verify_attestation(bundle, trust, limits=limits, now=now)
        return self._post_bundle(version.ref, "evidence", bundle)

    def _post_bundle(self, ref: ModelRef | str, what: str, bundle: bytes) -> Evidence:
        data = self._transport.json(
            "POST",
            f"{self._version_path(ref)}/{what}",
            content=lambda: bundle,
            headers={"Content-Type": "application/octet-stream"},
        )
        return Evidence.model_validate(data, strict=False)

    def approve(
        self, ref: ModelRef | str, target: str, signer: Signer, *, comment: str = ""
    ) -> Evidence:
        """Sign the approval here (the approver's key never leaves this process) and
        store the signed bytes on the server, where the gate judges the signer."""
        from mlprov.registry.approvals import approval_statement, check_approval  # noqa: PLC0415

        check_approval(target, comment)
        version = self.get_version(ref)
        signed = signer.sign(approval_statement(version, target, comment))
        return self._post_bundle(version.ref, "approvals", signed.bundle)

    def approvals(self, ref: ModelRef | str, *, target: str | None = None) -> list[Approval]:
        version = self.get_version(ref)
        stored = {e.digest: e for e in version.evidence}
        return [
            Approval(stored[a["digest"]], str(a["target"]), str(a["comment"]), str(a["time"]))
            for a in self._get(f"{self._version_path(version.ref)}/approvals", target=target)
            if a["digest"] in stored
        ]

    def waive(
        self,
        ref: ModelRef | str,
        target: str,
        signer: Signer,
        *,
        reason: str,
        expires_in: timedelta,
        requirements: tuple[str, ...] = (),
    ) -> Evidence:
        """Sign one holder's waiver here and store the signed bytes on the server."""
        from mlprov.registry.waivers import check_waiver, waiver_statement  # noqa: PLC0415

        check_waiver(target, reason=reason, expires_in=expires_in, requirements=requirements)
        version = self.get_version(ref)
        statement, _granted, _expires = waiver_statement(
            version, target, reason=reason, expires_in=expires_in, requirements=requirements
        )
        return self._post_bundle(version.ref, "waivers", signer.sign(statement).bundle)

    def waivers(self, ref: ModelRef | str) -> list[Waiver]:
        version = self.get_version(ref)
        stored = {e.digest: e for e in version.evidence}
        return [
            Waiver(
                stored[w["digest"]],
                str(w["target"]),
                tuple(str(r) for r in w["requirements"]),
                str(w["reason"]),
                str(w["granted"]),
                str(w["expires"]),
            )
            for w in self._get(f"{self._version_path(version.ref)}/waivers")
            if w["digest"] in stored
        ]

    def revoke(
        self,
        *,
        reason: str,
        signer: Signer,
        version: ModelRef | str | None = None,
        key_pem: bytes | None = None,
        identity: str | None = None,
    ) -> Revocation:
        """Sign the revocation here and store it on the server (``POST
        /api/v1/revocations``), which checks the claim and the revoker's role."""
        from mlprov.registry.revocation import (  # noqa: PLC0415
            check_revocation_reason,
            revocation_statement,
        )

        record = None
        if version is not None and key_pem is None and identity is None:
            check_revocation_reason(reason)
            record = self.get_version(version)
        statement, _kind, _value, _at = revocation_statement(
            reason=reason,
            version=record,
            key_pem=key_pem,
            identity=identity,
            versions_given=version is not None,
        )
        bundle = signer.sign(statement).bundle
        data = self._transport.json(
            "POST",
            "/api/v1/revocations",
            content=lambda: bundle,
            headers={"Content-Type": "application/octet-stream"},
        )
        return _revocation(data, bundle)

    def revocations(self) -> list[Revocation]:
        """The revocations, as listed by the server (which does not send the signed
        statements: ``bundle`` is empty here; verify them against a local registry)."""
        return [_revocation(r, b"") for r in self._get("/api/v1/revocations")]

    # -- policy and status -------------------------------------------------------------

    def status(self) -> list[AliasStatus]:
        return [
            AliasStatus(
                model=str(s["model"]),
                alias=str(s["alias"]),
                version=int(s["version"]),
                generation=int(s["generation"]),
                ok=bool(s["ok"]),
                revoked=bool(s["revoked"]),
                problem=s["problem"],
            )
            for s in self._get("/api/v1/status")
        ]

    def apply_policy(self, files: Mapping[str, bytes], *, reason: str = "") -> StoredPolicySet:
        encoded = {name: base64.b64encode(data).decode("ascii") for name, data in files.items()}
        applied = self._transport.json(
            "PUT", "/api/v1/policy", json={"files": encoded, "reason": reason}
        )
        stored = self.policy(int(applied["version"]))
        assert stored is not None  # it was just applied
        return stored

    def policy(self, version: int | None = None) -> StoredPolicySet | None:
        try:
            return _policy_set(self._get("/api/v1/policy", version=version))
        except NotFoundError:
            if version is None:
                return None
            raise

    def check_policy_remote(
        self, ref: ModelRef | str, target: str, *, policy_files: Mapping[str, bytes] | None = None
    ) -> dict[str, Any]:
        """The server's judgement of moving ``target`` to ``ref`` (``POST /policy/check``):
        ``allowed``, ``policy_digest``, ``message`` and the report as JSON."""
        body: dict[str, Any] = {"ref": str(_coerce(ref)), "target": target}
        if policy_files is not None:
            body["files"] = {
                name: base64.b64encode(data).decode("ascii") for name, data in policy_files.items()
            }
        # Changes nothing, so it may be repeated like a GET.
        result: dict[str, Any] = self._transport.json(
            "POST", "/api/v1/policy/check", json=body, retry=True
        )
        return result

    # -- aliases and stages ------------------------------------------------------------

    def _alias_path(self, name: str, alias: str) -> str:
        return f"{self._model_path(name)}/aliases/{_segment(alias)}"

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> AliasEvent | None:
        headers = (
            {"If-Match": f'"{expected_generation}"'} if expected_generation is not None else {}
        )
        data = self._transport.json(
            "PUT",
            self._alias_path(name, alias),
            json={"version": version, "reason": reason},
            headers=headers,
        )
        event = data.get("event")
        return AliasEvent.model_validate(event, strict=False) if event else None

    def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> AliasEvent:
        headers = (
            {"If-Match": f'"{expected_generation}"'} if expected_generation is not None else {}
        )
        data = self._transport.json(
            "DELETE", self._alias_path(name, alias), params={"reason": reason}, headers=headers
        )
        return AliasEvent.model_validate(data, strict=False)

    def get_alias(self, name: str, alias: str) -> AliasState:
        return AliasState.model_validate(self._get(self._alias_path(name, alias)), strict=False)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        names = [alias] if alias is not None else self._alias_names(name)
        events = [
            AliasEvent.model_validate(e, strict=False)
            for each in names
            for e in self._get(f"{self._alias_path(name, each)}/history")
        ]
        return sorted(events, key=lambda e: (e.at, e.alias, e.generation))

    def _alias_names(self, name: str) -> list[str]:
        """The aliases of a model or, the name being a deployment's, of the deployment."""
        try:
            return sorted(self._get(f"{self._model_path(name)}/aliases"))
        except NotFoundError:
            if not self.is_deployment(name):
                raise
            return sorted(self.get_deployment(name).aliases)

    def set_stage(
        self, name: str, version: int, stage: Stage | str, *, reason: str = ""
    ) -> list[StageEvent]:
        value = stage.value if isinstance(stage, Stage) else Stage.parse(stage).value
        data = self._transport.json(
            "PUT",
            f"{self._model_path(name)}/versions/{version}/stage",
            json={"stage": value, "reason": reason},
        )
        return [_stage_event(e) for e in data]

    def stage_history(self, name: str) -> list[StageEvent]:
        return [_stage_event(e) for e in self._get(f"{self._model_path(name)}/stages/history")]

    # -- deployments ---------------------------------------------------------------------

    def _deployment_path(self, name: str) -> str:
        return f"/api/v1/deployments/{_segment(name)}"

    def create_deployment(self, name: str, *, description: str = "") -> Deployment:
        data = self._transport.json(
            "POST", "/api/v1/deployments", json={"name": name, "description": description}
        )
        return _deployments.deployment_from_json(data)

    def get_deployment(self, name: str) -> Deployment:
        return _deployments.deployment_from_json(self._get(self._deployment_path(name)))

    def list_deployments(self) -> list[Deployment]:
        return [_deployments.deployment_from_json(d) for d in self._get("/api/v1/deployments")]

    def is_deployment(self, name: str) -> bool:
        """Whether ``name`` names a deployment the token may read (one namespace with
        models, ADR 0050)."""
        try:
            self._get(self._deployment_path(name))
        except NotFoundError:
            return False
        return True

    def deployment_versions(self, name: str) -> list[DeploymentVersion]:
        """Every version of a deployment, as listed (without the bundles' bytes:
        ``bundle`` is empty here; :meth:`deployment_version` fetches and checks one)."""
        return [
            _deployments.version_from_json(v, None)
            for v in self._get(self._deployment_path(name))["versions"]
        ]

    def deployment_version(self, ref: ModelRef | str) -> DeploymentVersion:
        """A deployment version (an alias or ``latest`` read once) with its signed
        bundle's exact bytes, which must hash to the digest the server lists."""
        parsed = _coerce(ref)
        number = parsed.version
        if number is None and parsed.alias == LATEST:
            number = self.get_deployment(parsed.name).latest_version
            if number is None:
                raise NotFoundError(f"deployment {parsed.name!r} has no versions")
        elif number is None:
            number = self.get_alias(parsed.name, parsed.alias or "").version
            if number is None:
                raise NotFoundError(f"{parsed}: the alias points nowhere (deleted)")
        path = f"{self._deployment_path(parsed.name)}/versions/{number}"
        data = self._get(path)
        bundle = self._transport.request("GET", f"{path}/bundle").content
        return _deployments.version_from_json(data, bundle)

    def release_deployment(
        self,
        name: str,
        members: Mapping[str, ModelRef | str],
        signer: Signer,
        *,
        metadata: Mapping[str, str] | None = None,
        reason: str = "",
    ) -> DeploymentVersion:
        """Release the next version of ``name``, signed here (ADR 0047): the server
        makes the exact statement (``POST .../statement``), this client checks it names
        the members and metadata asked for, signs it, and posts the bundle, which the
        server stores only if it is still exactly that statement (else 409, exit 3)."""
        wanted = _deployments.members_body(members)
        meta = dict(metadata or {})
        statement = self._transport.request(
            "POST",
            f"{self._deployment_path(name)}/statement",
            json={"members": wanted, "metadata": meta},
            retry=True,  # changes nothing
        ).content
        _deployments.check_statement(statement, name, wanted, meta)
        bundle = signer.sign(statement).bundle
        data = self._transport.json(
            "POST",
            f"{self._deployment_path(name)}/versions",
            params={"reason": reason},
            content=lambda: bundle,
            headers={"Content-Type": "application/octet-stream"},
        )
        return _deployments.version_from_json(data, bundle)

    def verify_deployment(
        self,
        ref: ModelRef | str,
        trust: Trust,
        *,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> DeploymentReport:
        """``mlprov verify DEPLOYMENT/N`` here, against ``trust`` (the caller's model
        signers): the bundle statement's exact bytes, and every member as ``verify REF``
        checks a version over HTTP, its bytes streamed and hashed, its signed manifest's
        digest required to be the one the statement binds (:mod:`._deployments`)."""
        version = self.deployment_version(ref)
        digests: dict[str, str] = {}
        results: list[CheckResult] = []
        for member in version.members:
            signed, checks = _deployments.member_checks(
                self, member, trust, now=now, progress=progress
            )
            if signed is not None:
                digests[member.role] = signed
            results.extend(checks)
        report = _deployments.deployment_report(version, digests, tuple(results), trust, now=now)
        return DeploymentReport(version, report)

    def pull_deployment(
        self,
        ref: ModelRef | str,
        to: Path,
        trust: Trust,
        *,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
        sync: bool = True,
    ) -> RemoteDeploymentPull:
        """``mlprov pull DEPLOYMENT@ALIAS --to DIR`` against a server: the server's gate
        judges the version the alias holds (its verification and the alias's deployment
        policy, ``GET .../aliases/{alias}/judgement``); then, here, each member's
        signature is verified against ``trust`` and its signed manifest must be the
        server's and have the digest the bundle statement binds, the statement must
        verify against ``trust`` and name exactly those members, and every member is
        streamed, hashed as it is written, into one staging folder installed at ``to``
        as a whole (``to/ROLE/...`` and ``to/deployment.sig``, as a local pull)."""
        from mlprov import signing  # noqa: PLC0415
        from mlprov.fs import current_umask, install_folder  # noqa: PLC0415
        from mlprov.registry.deployment_judge import BUNDLE_FILE_NAME  # noqa: PLC0415

        parsed = _coerce(ref)
        if parsed.alias is None or parsed.alias == LATEST:
            raise InvalidInputError(
                f"{ref}: pull takes NAME@ALIAS (an alias its policy protects), not a number "
                "or latest"
            )
        judged = self._get(
            f"{self._deployment_path(parsed.name)}/aliases/{_segment(parsed.alias)}/judgement"
        )
        if judged.get("policy_digest") is None:
            raise VerificationError(
                f"{parsed}: the server has no policy set applied, so nothing judges it"
            )
        number = judged.get("version") if isinstance(judged, dict) else None
        if not isinstance(number, int) or isinstance(number, bool):
            raise MalformedDocumentError(
                f"{parsed}: the server's judgement names no version number"
            )
        if not judged.get("verified"):
            raise VerificationError(
                f"{parsed} -> {parsed.name}/{number}: the server's verification fails: "
                f"{judged.get('message') or _first_failure(judged)}"
            )
        if not judged.get("allowed"):
            raise PolicyDenied(
                f"{parsed} -> {parsed.name}/{number}: {judged.get('message') or 'denied'}"
            )
        version = self.deployment_version(ModelRef(parsed.name, version=number))
        digests: dict[str, str] = {}
        fills = []
        for member in version.members:
            record, files, manifest, signature = self._snapshot(member.ref)
            if signature is None:
                raise VerificationError(f"{member.role}: {member.ref} has no stored signature")
            verified = signing.verify_bundle(signature, trust, now=now)
            _require_signed(record, verified.manifest, manifest)
            digests[member.role] = str(verified.manifest.digest)
            fill, _name = self._filler(
                record, files, signature, progress, record_install=True, sync=sync
            )
            fills.append((member.role, fill))
        report = _deployments.deployment_report(version, digests, (), trust, now=now)
        if report.failures:
            first = report.failures[0]
            raise VerificationError(
                f"{parsed} -> {version.ref}: {first.id} ({first.subject}): {first.message}"
            )
        mode = 0o666 & ~current_umask()

        def fill_all(staging: Path) -> None:
            # Every member into the one staging folder; the whole moves into place only
            # after the last byte of the last member matched its signed digest.
            for role, fill in fills:
                fill(staging / role)
            write_new(staging / BUNDLE_FILE_NAME, [version.bundle], mode, sync=sync)

        install_folder(Path(to), fill_all, sync=sync)
        return RemoteDeploymentPull(
            version, Path(to), report, judged.get("policy_digest"), judged.get("message")
        )

    # -- download, pull and audit --------------------------------------------------------

    def _snapshot(
        self, ref: ModelRef | str
    ) -> tuple[ModelVersion, list[StoredFile], Manifest, bytes | None]:
        """The version resolved once, its files, manifest and newest stored signature."""
        record = self.get_version(ref)
        files = self.version_files(record.ref)
        manifest = Manifest.of(
            record.hash_algorithm,
            (FileEntry(f.path, Digest.parse(f.digest), f.size) for f in files),
        )
        signature: bytes | None = None
        if any(e.kind == "signature" for e in record.evidence):
            signature = self.signature_of(record.ref)
        return record, files, manifest, signature

    def download(
        self, ref: ModelRef | str, to: Path, *, progress: ProgressCallback | None = None
    ) -> ModelVersion:
        """Install a version's files at ``to``, each hashed while it streams in; a signed
        version only if the server's manifest is the signed one (the signature itself
        is verified only with a trust: :meth:`install_verified`)."""
        from mlprov import signing  # noqa: PLC0415

        record, files, manifest, signature = self._snapshot(ref)
        if signature is not None:
            try:
                claimed = signing.inspect_signature(signature).statement.manifest
            except MalformedDocumentError as e:
                raise VerificationError(
                    f"{record.ref}: the stored signature does not parse: {e.message}"
                ) from e
            _require_signed(record, claimed, manifest)
        self._install(record, files, signature, Path(to), progress)
        return record

    def install_verified(
        self,
        ref: ModelRef | str,
        to: Path,
        trust: Trust,
        *,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
        sync: bool = True,
    ) -> VerifiedInstall:
        """Resolve once, verify the stored signature against ``trust`` here, require the
        server's manifest to be the signed one, then stream every file while hashing it
        into a staging folder installed atomically at ``to`` (fsynced unless ``sync`` is
        false)."""
        from mlprov import signing  # noqa: PLC0415

        record, files, manifest, signature = self._snapshot(ref)
        if signature is None:
            raise VerificationError(
                f"{record.ref} has no stored signature: nothing to verify it against"
            )
        verified: VerifiedSignature = signing.verify_bundle(signature, trust, now=now)
        _require_signed(record, verified.manifest, manifest)
        target = Path(to)
        name = self._install(
            record, files, signature, target, progress, record_install=True, sync=sync
        )
        assert name is not None
        return VerifiedInstall(record, verified, target, target / name)

    def signed_resolution(self, name: str, alias: str, *, ttl: timedelta | None = None) -> bytes:
        """The server's signed resolution of ``name@alias`` (its registry key signs it);
        verify it with :func:`mlprov.serving.verify_resolution` before relying on it."""
        params = {"ttl": int(ttl.total_seconds())} if ttl is not None else {}
        return self._transport.request(
            "GET", f"{self._alias_path(name, alias)}/resolution", params=params
        ).content

    def pull(
        self,
        ref: ModelRef | str,
        to: Path,
        trust: Trust,
        *,
        resolution: ResolutionCheck | None = None,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
        sync: bool = True,
    ) -> RemotePull:
        """``mlprov pull NAME@ALIAS`` against a server (docs/client.md, ADR 0047).

        With ``resolution`` the alias is resolved by the server's signed statement: it
        must verify with the registry's key and be accepted by the client's state (no
        older generation, not expired), before anything else; without, by one read of
        the alias. Then the server's gate is asked whether that version may be at the
        alias now (policy, approvals, revocations), the version's digest must be the one
        resolved, and it is installed only if its signature verifies against ``trust``
        here, every file hashed as it streams in, atomically.
        """
        parsed = _coerce(ref)
        if parsed.alias is None or parsed.alias == LATEST:
            raise InvalidInputError(
                f"{ref}: pull takes NAME@ALIAS (an alias its policy protects), not a number "
                "or latest"
            )
        when = now or datetime.now(timezone.utc)
        verified: Resolution | None = None
        if resolution is not None:
            from mlprov.serving import verify_resolution  # noqa: PLC0415

            statement = resolution.statement
            if statement is None:
                statement = self.signed_resolution(parsed.name, parsed.alias)
            verified = verify_resolution(statement, resolution.trust, when)
            if (verified.name, verified.alias) != (parsed.name, parsed.alias):
                raise VerificationError(
                    f"the resolution is for {verified.ref}, not {parsed.name}@{parsed.alias}"
                )
            # Recorded before the install (TUF's order): a genuine newer answer stays seen.
            resolution.state.accept(verified, when)
            number = verified.version
        else:
            state = self.get_alias(parsed.name, parsed.alias)
            if state.version is None:
                raise NotFoundError(f"{parsed}: the alias points nowhere (deleted)")
            number = state.version
        exact = ModelRef(parsed.name, version=number)
        judged = self.check_policy_remote(exact, parsed.alias)
        if judged.get("policy_digest") is None:
            raise VerificationError(
                f"{parsed}: the server has no policy set applied, so nothing judges it"
            )
        if not judged.get("allowed"):
            raise PolicyDenied(f"{parsed} -> {exact}: {judged.get('message') or 'denied'}")
        if verified is not None:
            record = self.get_version(exact)
            if record.digest != verified.manifest_digest:
                raise VerificationError(
                    f"{exact} has digest {record.digest}, the signed resolution names "
                    f"{verified.manifest_digest}"
                )
        installed = self.install_verified(
            exact, Path(to), trust, now=now, progress=progress, sync=sync
        )
        return RemotePull(installed, judged.get("policy_digest"), judged.get("message"), verified)

    def _install(
        self,
        record: ModelVersion,
        files: list[StoredFile],
        signature: bytes | None,
        to: Path,
        progress: ProgressCallback | None,
        *,
        record_install: bool = False,
        sync: bool = True,
    ) -> str | None:
        """Install the files and the signature (with ``record_install``, the install
        record ``mlprov check-installed`` reads, written last in the staging folder)."""
        from mlprov.fs import install_folder  # noqa: PLC0415

        fill, signature_name = self._filler(
            record, files, signature, progress, record_install=record_install, sync=sync
        )
        install_folder(to, fill, sync=sync)
        return signature_name

    def _filler(
        self,
        record: ModelVersion,
        files: list[StoredFile],
        signature: bytes | None,
        progress: ProgressCallback | None,
        *,
        record_install: bool,
        sync: bool = True,
    ) -> tuple[Callable[[Path], None], str | None]:
        """What :meth:`_install` writes into a staging folder, after checking the names
        (a deployment's pull writes several into one staging folder, one per role)."""
        from mlprov.fs import current_umask  # noqa: PLC0415
        from mlprov.serving import INSTALL_RECORD_NAME, install_record  # noqa: PLC0415

        names = [(record.artifact_name if f.path == SINGLE_FILE_NAME else f.path, f) for f in files]
        for name, _item in names:
            check_relative_path(name)
        signature_name: str | None = None
        if signature is not None:
            single = len(names) == 1 and files[0].path == SINGLE_FILE_NAME
            signature_name = f"{names[0][0]}.sig" if single else _SIGNATURE_FILE
            if signature_name in {name for name, _ in names}:
                raise ConflictError(
                    f"{record.ref} has a file named {signature_name}, where its stored "
                    "signature would be written; download it with `mlprov evidence` instead"
                )
            if record_install and INSTALL_RECORD_NAME in {name for name, _ in names}:
                raise ConflictError(
                    f"{record.ref} has a file named {INSTALL_RECORD_NAME}, where the install "
                    "record would be written; download it with `mlprov download` instead"
                )
        mode = 0o666 & ~current_umask()

        def fill(staging: Path) -> None:
            for name, item in names:
                self._fetch(staging / name, item, mode, progress, sync=sync)
            if signature_name is not None and signature is not None:
                write_new(staging / signature_name, [signature], mode, sync=sync)
                if record_install:
                    made = install_record(staging, signature_name, signature)
                    write_new(staging / INSTALL_RECORD_NAME, [made], mode, sync=sync)

        return fill, signature_name

    def _fetch(
        self,
        target: Path,
        item: StoredFile,
        mode: int,
        progress: ProgressCallback | None,
        *,
        sync: bool,
    ) -> None:
        """Stream one blob into ``target``, hashing it as it is written (no second pass)."""
        from mlprov.manifest import new_hasher  # noqa: PLC0415

        digest = Digest.parse(item.digest)
        hasher = new_hasher(digest.algorithm)
        blob_hasher = new_hasher("sha256") if digest.algorithm != "sha256" else None
        hashers = [hasher] if blob_hasher is None else [hasher, blob_hasher]
        # Identity: the bytes hashed must be the blob's, never a re-encoding of them.
        with self._transport.download(
            f"/api/v1/blobs/{item.blob}", headers={"Accept-Encoding": "identity"}
        ) as read_into:
            size = receive_blob(read_into, target, mode, hashers, progress, sync=sync)
        if size != item.size:
            raise DigestMismatchError(
                f"{target.name}: the server sent {size} bytes, the manifest records {item.size}"
            )
        actual = hasher.hexdigest()
        if actual != digest.hex:
            raise DigestMismatchError(
                f"{target.name}: digest mismatch, expected {digest.hex} got {actual}"
            )
        if blob_hasher is not None and blob_hasher.hexdigest() != item.blob:
            raise DigestMismatchError(f"{target.name}: the blob's bytes are not {item.blob}")

    def audit_log(
        self, *, subject: str | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        return [_audit_entry(e) for e in self._get("/api/v1/audit", subject=subject, limit=limit)]

    def audit_chain(self) -> tuple[int, str, list[AuditEntry]]:
        """The chain head (sequence, hash) and every entry with the exact details text
        it hashes (``GET /api/v1/audit/chain``, page by page), for checking the chain
        here. The head is the last page's, read with it, so it covers every entry sent.
        The whole chain is held in memory: :meth:`verified_audit_chain` checks one of any
        length without that."""
        entries: list[AuditEntry] = []
        last = (0, "")
        for head, page in self._chain_pages():
            entries.extend(page)
            last = head
        return last[0], last[1], entries

    def _chain_pages(self) -> Iterator[tuple[tuple[int, str], list[AuditEntry]]]:
        """Each page of the chain in order, with the head the server read with it."""
        after = 0
        while True:
            data = self._get("/api/v1/audit/chain", after=after, limit=self.audit_page)
            try:
                head = data["head"]
                sequence, head_hash = int(head["sequence"]), str(head["hash"])
                page = [AuditEntry.model_validate(e, strict=False) for e in data["entries"]]
                following = data.get("next")
            except (KeyError, TypeError, ValueError) as e:
                raise MalformedDocumentError(
                    f"the server's audit chain does not parse: {e}"
                ) from None
            # A next page must start later, or a lying server keeps the client asking.
            if following is not None and (
                not isinstance(following, int) or not page or following <= after
            ):
                raise MalformedDocumentError(
                    f"the server's audit chain does not parse: 'next' is {following!r} "
                    f"after {after}"
                )
            yield (sequence, head_hash), page
            if following is None:
                return
            after = following

    def verified_audit_chain(self, checkpoint: Checkpoint | None = None) -> tuple[int, str]:
        """The chain head (sequence, hash) after the chain the server sends was recomputed
        here page by page (:class:`mlprov.audit.ChainWalk`, holding one page at a time, so
        a log of any length fits), and with ``checkpoint`` found to extend the chain it
        saw: a broken link or a rewritten history is AuditChainError, exit 1."""
        from mlprov.audit import ChainWalk  # noqa: PLC0415

        walk = ChainWalk(checkpoint)
        last = (0, "")
        for head, page in self._chain_pages():
            for entry in page:
                walk.add(entry)
            last = head
        walk.finish(head_seq=last[0], head_hash=last[1])
        return last

    def checkpoint_audit(self, signer: Signer) -> bytes:
        """A checkpoint of the server's audit chain head, signed here with ``signer``
        after the chain was recomputed here (the key never leaves this process), then
        recorded by the server as its ``audit.checkpoint`` entry (``POST
        /api/v1/audit/checkpoints``, which needs ``audit`` on every model). A refused
        POST raises: no checkpoint is handed out that the server did not record."""
        from mlprov.audit import Checkpoint  # noqa: PLC0415

        sequence, head_hash = self.verified_audit_chain()
        # The registry's time format, as a local checkpoint records it.
        moment = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        mark = Checkpoint(sequence, head_hash, moment)
        bundle = signer.sign(canonical_json(mark.statement(), "audit checkpoint")).bundle
        # Retried: the server records one checkpoint once, however often it is sent.
        self._transport.json(
            "POST",
            "/api/v1/audit/checkpoints",
            retry=True,
            content=lambda: bundle,
            headers={"Content-Type": "application/octet-stream"},
        )
        return bundle

    def verify_audit(
        self, *, checkpoint: bytes | None = None, trust: Trust | None = None, **options: Any
    ) -> int:
        """Without ``checkpoint``: the server recomputes its chain and the state it
        vouches for (a broken one is an AuditChainError's exit code, 1). With one: the
        checkpoint is verified here against ``trust``, the chain the server sends is
        recomputed here and must extend the checkpoint's head, so a server that
        rewrote or truncated its history is caught here; then the server's own state
        check runs as without one."""
        if checkpoint is None:
            if trust is not None or options:
                raise InvalidInputError("trust options go with --checkpoint")
            return int(self._get("/api/v1/audit/verify")["entries"])
        from mlprov import signing  # noqa: PLC0415
        from mlprov.audit import Checkpoint  # noqa: PLC0415
        from mlprov.config import Limits  # noqa: PLC0415

        if trust is None:
            raise InvalidInputError("say whom the checkpoint must be signed by (--key, ...)")
        verified = signing.verify_attestation(
            checkpoint, trust, limits=Limits(), now=options.get("now")
        )
        mark = Checkpoint.from_statement(verified.statement)
        count, _head = self.verified_audit_chain(mark)
        self._get("/api/v1/audit/verify")
        return count


def _version_fields(info: VersionInput) -> dict[str, Any]:
    """A VersionInput as the fields of the registration body (``VersionCreateBody``)."""
    value = dataclasses.asdict(info)
    value["datasets"] = [dataclasses.asdict(d) for d in info.datasets]
    value["lineage"] = [dataclasses.asdict(e) for e in info.lineage]
    return {k: v for k, v in value.items() if v is not None}


def _first_failure(judged: Any) -> str:
    """The first failed check of a report as ``POST /policy/check`` renders it."""
    report = judged.get("report") if isinstance(judged, dict) else None
    checks = report.get("checks") if isinstance(report, dict) else None
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, dict) and check.get("status") == "failed":
            return f"{check.get('id')} ({check.get('subject')}): {check.get('message')}"
    return "a check failed"


def _require_signed(record: ModelVersion, signed: Manifest, actual: Manifest) -> None:
    from mlprov import signing  # noqa: PLC0415

    try:
        signing.match_manifest(signed, actual)
    except MlprovError as e:
        raise VerificationError(
            f"{record.ref}: the server's manifest is not the signed one: {e.message}"
        ) from e


def _inline_files(files: Sequence[Any], manifest: Mapping[str, FileEntry]) -> dict[str, bytes]:
    """The bytes of the small files to send inline, by path, smallest first until
    :data:`_INLINE_TOTAL`, each read once and checked against the digest it was hashed
    to (a file that changed since is refused here, before anything is sent)."""
    import hashlib  # noqa: PLC0415

    chosen: dict[str, bytes] = {}
    total = 0
    for item in sorted(files, key=lambda f: (f.size, f.name)):
        entry = manifest[item.name]
        if item.size > _INLINE_FILE or total + item.size > _INLINE_TOTAL:
            break
        try:
            with item.path.open("rb") as handle:
                data = handle.read(_INLINE_FILE + 1)
        except OSError as e:
            raise StorageError(f"{item.name}: cannot read: {e.strerror}") from e
        if hashlib.sha256(data).hexdigest() != entry.digest.hex:
            raise VerificationError(f"{item.name}: changed while being registered")
        chosen[item.name] = data
        total += len(data)
    return chosen
