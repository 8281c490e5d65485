"""Evidence (signatures and attestations): rows of ``evidence`` as records, with the
exact stored bytes fetched apart."""

from __future__ import annotations

import sqlalchemy as sa

from mlprov.records import Evidence
from mlprov.store import _schema as t
from mlprov.store._rows import Row, Rows

__all__ = ["EvidenceRows"]

_WITHOUT_CONTENT = [c for c in t.evidence.c if c.name != "content"]


def _record(row: Row) -> Evidence:
    return Evidence(
        id=int(row.id),
        kind=str(row.kind),
        media_type=str(row.media_type),
        predicate_type=str(row.predicate_type),
        digest=str(row.digest),
        signer=str(row.signer),
        created_at=str(row.created_at),
        created_by=str(row.created_by),
    )


class EvidenceRows(Rows):
    def insert(
        self,
        version_id: int,
        *,
        kind: str,
        media_type: str,
        predicate_type: str,
        content: bytes,
        digest: str,
        signer: str,
        at: str,
        actor: str,
    ) -> Evidence:
        result = self.connection.execute(
            sa.insert(t.evidence)
            .values(
                version_id=version_id,
                kind=kind,
                media_type=media_type,
                predicate_type=predicate_type,
                content=content,
                digest=digest,
                signer=signer,
                created_at=at,
                created_by=actor,
            )
            .returning(t.evidence.c.id)
        )
        return Evidence(
            id=int(result.scalar_one()),
            kind=kind,
            media_type=media_type,
            predicate_type=predicate_type,
            digest=digest,
            signer=signer,
            created_at=at,
            created_by=actor,
        )

    def records(self, version_id: int) -> list[Evidence]:
        """A version's evidence, oldest first (without the bytes)."""
        return [
            _record(row)
            for row in self._all(
                sa.select(*_WITHOUT_CONTENT)
                .where(t.evidence.c.version_id == version_id)
                .order_by(t.evidence.c.id)
            )
        ]

    def contents(self, version_id: int) -> dict[str, bytes]:
        """Every piece of a version's evidence, digest -> exact stored bytes, in one query
        (the gate loads them for every version it verifies)."""
        return {
            str(row.digest): bytes(row.content)
            for row in self._all(
                sa.select(t.evidence.c.digest, t.evidence.c.content).where(
                    t.evidence.c.version_id == version_id
                )
            )
        }

    def exists(self, version_id: int, digest: str) -> bool:
        return (
            self._one(
                sa.select(t.evidence.c.id).where(
                    t.evidence.c.version_id == version_id, t.evidence.c.digest == digest
                )
            )
            is not None
        )

    def content(self, version_id: int, digest: str) -> bytes | None:
        """The exact stored bytes of one piece of evidence (unchecked; the caller checks)."""
        row = self._one(
            sa.select(t.evidence.c.content).where(
                t.evidence.c.version_id == version_id, t.evidence.c.digest == digest
            )
        )
        return bytes(row.content) if row is not None else None
