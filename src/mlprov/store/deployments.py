"""Deployments: rows of ``deployments``, ``deployment_versions``, ``deployment_members``,
``deployment_aliases`` and ``deployment_alias_history`` as records.

A deployment version is immutable once inserted: nothing here updates a version or its
members. Its alias rows work like model aliases (:mod:`mlprov.store.aliases`): a
generation counter moved by compare-and-set, a deleted alias keeping its row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from mlprov.canonical import canonical_json
from mlprov.records import Deployment, DeploymentMember, DeploymentVersion
from mlprov.store import _schema as t
from mlprov.store._rows import Row, Rows

__all__ = [
    "Deployment",
    "DeploymentKey",
    "DeploymentMember",
    "DeploymentRows",
    "DeploymentVersion",
    "DeploymentVersionKey",
]


@dataclass(frozen=True)
class DeploymentKey:
    """A deployment's identity in this store and the number its next version will get."""

    id: int
    name: str
    next_version: int


@dataclass(frozen=True)
class DeploymentVersionKey:
    id: int
    deployment: str
    number: int

    @property
    def ref(self) -> str:
        return f"{self.deployment}/{self.number}"


def _key(row: Row) -> DeploymentKey:
    return DeploymentKey(int(row.id), str(row.name), int(row.next_version))


class DeploymentRows(Rows):
    # -- deployments -------------------------------------------------------------------

    def find(self, name: str) -> DeploymentKey | None:
        row = self._one(sa.select(t.deployments).where(t.deployments.c.name == name))
        return _key(row) if row is not None else None

    def insert(self, *, name: str, description: str, at: str, actor: str) -> DeploymentKey:
        result = self.connection.execute(
            sa.insert(t.deployments)
            .values(name=name, description=description, created_at=at, created_by=actor)
            .returning(t.deployments.c.id)
        )
        return DeploymentKey(int(result.scalar_one()), name, 1)

    def names(self) -> list[str]:
        return [
            str(r.name)
            for r in self._all(sa.select(t.deployments.c.name).order_by(t.deployments.c.name))
        ]

    def record(self, key: DeploymentKey) -> Deployment:
        row = self._one(sa.select(t.deployments).where(t.deployments.c.id == key.id))
        assert row is not None
        latest = self.connection.execute(
            sa.select(sa.func.max(t.deployment_versions.c.number)).where(
                t.deployment_versions.c.deployment_id == key.id
            )
        ).scalar_one()
        aliases = {
            str(r.name): int(r.number)
            for r in self._all(
                sa.select(t.deployment_aliases.c.name, t.deployment_versions.c.number)
                .select_from(t.deployment_aliases)
                .join(
                    t.deployment_versions,
                    t.deployment_versions.c.id == t.deployment_aliases.c.deployment_version_id,
                )
                .where(t.deployment_aliases.c.deployment_id == key.id)
            )
        }
        return Deployment(
            str(row.name),
            str(row.description),
            str(row.created_at),
            str(row.created_by),
            int(latest) if latest is not None else None,
            aliases,
        )

    def claim_version_number(self, key: DeploymentKey, number: int) -> bool:
        """Compare-and-set on the next version number: False when another release
        took ``number`` first."""
        result = self.connection.execute(
            sa.update(t.deployments)
            .where(t.deployments.c.id == key.id, t.deployments.c.next_version == number)
            .values(next_version=number + 1)
        )
        return result.rowcount == 1

    def claim_imported_number(self, key: DeploymentKey, number: int) -> bool:
        """Compare-and-set for an imported version, which keeps its number: take
        ``number`` only if no number at or above it was ever given."""
        result = self.connection.execute(
            sa.update(t.deployments)
            .where(t.deployments.c.id == key.id, t.deployments.c.next_version <= number)
            .values(next_version=number + 1)
        )
        return result.rowcount == 1

    # -- versions ----------------------------------------------------------------------

    def insert_version(
        self,
        key: DeploymentKey,
        *,
        number: int,
        members: list[tuple[str, int, str]],
        meta: dict[str, str],
        bundle: bytes,
        bundle_digest: str,
        signer: str,
        at: str,
        actor: str,
    ) -> DeploymentVersionKey:
        """Insert version ``number`` with its members (role, version row id, digest)."""
        result = self.connection.execute(
            sa.insert(t.deployment_versions)
            .values(
                deployment_id=key.id,
                number=number,
                meta=canonical_json(meta).decode("utf-8"),
                bundle=bundle,
                bundle_digest=bundle_digest,
                signer=signer,
                created_at=at,
                created_by=actor,
            )
            .returning(t.deployment_versions.c.id)
        )
        version_id = int(result.scalar_one())
        for role, member_id, digest in members:
            self.connection.execute(
                sa.insert(t.deployment_members).values(
                    deployment_version_id=version_id, role=role, version_id=member_id, digest=digest
                )
            )
        return DeploymentVersionKey(version_id, key.name, number)

    def find_version(self, key: DeploymentKey, number: int) -> DeploymentVersionKey | None:
        row = self._one(
            sa.select(t.deployment_versions.c.id).where(
                t.deployment_versions.c.deployment_id == key.id,
                t.deployment_versions.c.number == number,
            )
        )
        return DeploymentVersionKey(int(row.id), key.name, number) if row is not None else None

    def latest_version(self, key: DeploymentKey) -> DeploymentVersionKey | None:
        number = self.connection.execute(
            sa.select(sa.func.max(t.deployment_versions.c.number)).where(
                t.deployment_versions.c.deployment_id == key.id
            )
        ).scalar_one()
        return self.find_version(key, int(number)) if number is not None else None

    def version_record(self, key: DeploymentVersionKey) -> DeploymentVersion:
        row = self._one(
            sa.select(t.deployment_versions, t.deployments.c.name)
            .join(t.deployments, t.deployments.c.id == t.deployment_versions.c.deployment_id)
            .where(
                t.deployments.c.name == key.deployment,
                t.deployment_versions.c.number == key.number,
            )
        )
        assert row is not None
        members = tuple(
            DeploymentMember(str(r.role), str(r.model), int(r.number), str(r.digest))
            for r in self._all(
                sa.select(
                    t.deployment_members.c.role,
                    t.deployment_members.c.digest,
                    t.versions.c.number,
                    t.models.c.name.label("model"),
                )
                .select_from(t.deployment_members)
                .join(t.versions, t.versions.c.id == t.deployment_members.c.version_id)
                .join(t.models, t.models.c.id == t.versions.c.model_id)
                .where(t.deployment_members.c.deployment_version_id == row.id)
                .order_by(t.deployment_members.c.role)
            )
        )
        return DeploymentVersion(
            deployment=str(row.name),
            version=int(row.number),
            members=members,
            meta={str(k): str(v) for k, v in json.loads(str(row.meta)).items()},
            bundle_digest=str(row.bundle_digest),
            signer=str(row.signer),
            created_at=str(row.created_at),
            created_by=str(row.created_by),
            bundle=bytes(row.bundle),
        )

    def numbers(self, key: DeploymentKey) -> list[int]:
        return [
            int(r.number)
            for r in self._all(
                sa.select(t.deployment_versions.c.number)
                .where(t.deployment_versions.c.deployment_id == key.id)
                .order_by(t.deployment_versions.c.number)
            )
        ]

    def containing(self, model: str, version: int) -> list[tuple[str, int, str, str]]:
        """(deployment, version, role, bundle digest) of every deployment version
        pinning ``model/version``."""
        rows = self._all(
            sa.select(
                t.deployments.c.name,
                t.deployment_versions.c.number,
                t.deployment_members.c.role,
                t.deployment_versions.c.bundle_digest,
            )
            .select_from(t.deployment_members)
            .join(
                t.deployment_versions,
                t.deployment_versions.c.id == t.deployment_members.c.deployment_version_id,
            )
            .join(t.deployments, t.deployments.c.id == t.deployment_versions.c.deployment_id)
            .join(t.versions, t.versions.c.id == t.deployment_members.c.version_id)
            .join(t.models, t.models.c.id == t.versions.c.model_id)
            .where(t.models.c.name == model, t.versions.c.number == version)
            .order_by(t.deployments.c.name, t.deployment_versions.c.number)
        )
        return [(str(r.name), int(r.number), str(r.role), str(r.bundle_digest)) for r in rows]
