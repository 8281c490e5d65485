"""Origins of imported versions: rows of ``version_origins`` as records (ADR 0051)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from mlprov.store import _schema as t
from mlprov.store._rows import Row, Rows

__all__ = ["VersionOrigin", "VersionOriginRows"]


@dataclass(frozen=True)
class VersionOrigin:
    """Which registry and version an imported version came from, by which archive."""

    version_id: int
    archive_digest: str
    origin_registry_id: str
    origin_registry_uri: str
    origin_version: str
    with_bytes: bool
    imported_at: str
    imported_by: str


def _origin(row: Row) -> VersionOrigin:
    return VersionOrigin(
        int(row.version_id),
        str(row.archive_digest),
        str(row.origin_registry_id),
        str(row.origin_registry_uri),
        str(row.origin_version),
        bool(row.with_bytes),
        str(row.imported_at),
        str(row.imported_by),
    )


class VersionOriginRows(Rows):
    def find(self, version_id: int) -> VersionOrigin | None:
        row = self._one(
            sa.select(t.version_origins).where(t.version_origins.c.version_id == version_id)
        )
        return _origin(row) if row is not None else None

    def by_archive(self, archive_digest: str) -> list[VersionOrigin]:
        rows = self._all(
            sa.select(t.version_origins)
            .where(t.version_origins.c.archive_digest == archive_digest)
            .order_by(t.version_origins.c.version_id)
        )
        return [_origin(row) for row in rows]

    def insert(self, origin: VersionOrigin) -> None:
        self.connection.execute(
            sa.insert(t.version_origins).values(
                version_id=origin.version_id,
                archive_digest=origin.archive_digest,
                origin_registry_id=origin.origin_registry_id,
                origin_registry_uri=origin.origin_registry_uri,
                origin_version=origin.origin_version,
                with_bytes=origin.with_bytes,
                imported_at=origin.imported_at,
                imported_by=origin.imported_by,
            )
        )
