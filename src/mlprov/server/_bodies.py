"""Request bodies of the HTTP API: strict (unknown fields refused), one class per shape."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from mlprov.errors import InvalidInputError
from mlprov.refs import MAX_VERSION
from mlprov.registry import DatasetInput, LineageInput, UploadedFile, VersionInput

__all__ = [
    "AliasMoveBody",
    "DescriptionBody",
    "DocumentsBody",
    "ExportRecordBody",
    "ModelCreateBody",
    "PolicyApplyBody",
    "PolicyCheckBody",
    "StageMoveBody",
    "TagChangesBody",
    "VersionCreateBody",
    "VersionNumber",
    "decode_base64",
]


#: A version number in a path: bounded like the stores' column, so no request can make a
#: query overflow.
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelCreateBody(_Body):
    name: str = Field(max_length=128)
    description: str = Field("", max_length=65536)
    tags: dict[str, str] = Field(default_factory=dict)


class TagChangesBody(_Body):
    #: Tag -> new value, or null to remove the tag.
    tags: dict[str, str | None]
    reason: str = Field("", max_length=4096)


class DescriptionBody(_Body):
    description: str = Field(max_length=65536)


class ExportRecordBody(_Body):
    """An archive a client wrote from this registry (``mlprov export`` in client mode):
    the version or deployment version it holds, and its digest (``sha256:HEX``)."""

    ref: str = Field(min_length=1, max_length=300)
    archive_digest: str = Field(min_length=71, max_length=71)
    with_ancestors: bool = False


class FileBody(_Body):
    path: str = Field(min_length=1, max_length=4096)
    sha256: str = Field(min_length=64, max_length=64)
    size: int = Field(ge=0)
    #: The file's bytes (base64) in this request instead of an upload before it; the
    #: request's size limit bounds them (docs/server.md, "Uploading and registering").
    content: str | None = None


class DatasetBody(_Body):
    name: str
    uri: str
    digest: str


class LineageBody(_Body):
    relation: str
    target: str


class VersionCreateBody(_Body):
    """A version from blobs already uploaded (``PUT /api/v1/blobs/{sha256}``) or, for
    files with a ``content``, sent inline."""

    files: list[FileBody] = Field(min_length=1)
    #: The folder name the version records (default: the model name).
    artifact_name: str | None = None
    #: An OMS signature bundle (base64) of exactly these files, made by the client.
    signature: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    datasets: list[DatasetBody] = Field(default_factory=list)
    lineage: list[LineageBody] = Field(default_factory=list)
    source_uri: str | None = None
    run_id: str | None = None
    code_repo: str | None = None
    code_commit: str | None = None
    code_dirty: bool | None = None
    builder_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    environment: list[str] | None = None
    card: dict[str, Any] | None = None

    def uploaded_files(self) -> list[UploadedFile]:
        return [UploadedFile(f.path, f.sha256, f.size) for f in self.files]

    def inline_contents(self) -> dict[str, bytes]:
        """The bytes of the files sent inline, by path (bad base64 is bad input)."""
        found: dict[str, bytes] = {}
        for f in self.files:
            if f.content is not None:
                found[f.path] = decode_base64(f.content, f"the content of {f.path[:200]!r}")
        return found

    def version_input(self) -> VersionInput:
        return VersionInput(
            params=dict(self.params),
            metrics=dict(self.metrics),
            tags=dict(self.tags),
            description=self.description,
            datasets=[DatasetInput.parse(f"{d.name}={d.uri}@{d.digest}") for d in self.datasets],
            lineage=[LineageInput(e.relation, e.target) for e in self.lineage],
            source_uri=self.source_uri,
            run_id=self.run_id,
            code_repo=self.code_repo,
            code_commit=self.code_commit,
            code_dirty=self.code_dirty,
            builder_id=self.builder_id,
            started_at=self.started_at,
            finished_at=self.finished_at,
            environment=list(self.environment) if self.environment is not None else None,
            card=dict(self.card) if self.card is not None else None,
        )


class DocumentsBody(_Body):
    """A version's own documents signed by its model signer on the client: each bundle's
    exact bytes in base64 (``provenance``, ``bom``, ``model-card``)."""

    documents: dict[str, str] = Field(min_length=1, max_length=8)

    def bundles(self) -> dict[str, bytes]:
        return {kind: decode_base64(text, kind[:40]) for kind, text in self.documents.items()}


class AliasMoveBody(_Body):
    version: int = Field(ge=1, le=MAX_VERSION)
    reason: str = Field("", max_length=4096)


class StageMoveBody(_Body):
    stage: str = Field(max_length=32)
    reason: str = Field("", max_length=4096)


class PolicyApplyBody(_Body):
    #: File name (relative, as in the policy folder) -> its bytes in base64.
    files: dict[str, str] = Field(min_length=1)
    reason: str = Field("", max_length=4096)


class PolicyCheckBody(_Body):
    ref: str = Field(max_length=300)
    target: str = Field(max_length=300)
    #: Judge by these files (as for apply) instead of the active policy set.
    files: dict[str, str] | None = None


def decode_base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{what} is not valid base64") from None
