"""Lineage: resolving the edges a new version names, and walking the graph."""

from __future__ import annotations

from collections.abc import Sequence

from mlprov.errors import InvalidInputError
from mlprov.lineage import LineageEdgeView, LineageGraph, LineageNode
from mlprov.manifest import Digest
from mlprov.records import LineageEdge
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, resolve
from mlprov.registry.inputs import LineageInput
from mlprov.store import StoreTransaction
from mlprov.store.lineage import StoredEdge
from mlprov.store.versions import VersionKey

__all__ = ["check_lineage", "lineage", "resolve_edge", "stored_edge"]


def resolve_edge(tx: StoreTransaction, edge: LineageInput) -> LineageEdge:
    """A lineage input as it will be recorded: a registered target by ``name/number``
    and its digest, or an external ``URI@ALGORITHM:HEX``."""
    target = edge.target
    if "://" not in target or target.startswith("models:/"):
        key = resolve(tx, ModelRef.parse(target))
        return LineageEdge(
            relation=edge.relation, target=key.ref, digest=key.digest, registered=True
        )
    uri, at, digest = target.rpartition("@")
    if not at or not uri:
        raise InvalidInputError(
            f"invalid lineage target {target[:120]!r}: use NAME@VERSION, NAME/VERSION "
            "or URI@ALGORITHM:HEX for an external artefact"
        )
    return LineageEdge(
        relation=edge.relation, target=uri, digest=str(Digest.parse(digest)), registered=False
    )


def stored_edge(tx: StoreTransaction, edge: LineageEdge) -> StoredEdge:
    """The row for an edge, its registered target looked up again in the write
    transaction (versions are never deleted, but the rule stays in one place)."""
    if not edge.registered:
        return StoredEdge(0, edge.relation, None, edge.target, edge.digest)
    key = resolve(tx, ModelRef.parse(edge.target))
    return StoredEdge(0, edge.relation, key.id, None, key.digest)


def check_lineage(context: RegistryContext, edges: Sequence[LineageInput]) -> list[LineageEdge]:
    """Resolve lineage targets now (each must exist); the edges as they would be stored."""
    with context.metadata.read() as tx:
        return [resolve_edge(tx, edge) for edge in edges]


def _node(tx: StoreTransaction, key: VersionKey) -> LineageNode:
    datasets = tuple((d.name, d.uri, d.digest) for d in tx.versions.datasets(key))
    repo, commit = tx.versions.code(key)
    return LineageNode(
        key=key.ref,
        digest=key.digest,
        registered=True,
        datasets=datasets,
        code_repo=repo,
        code_commit=commit,
    )


def lineage(
    context: RegistryContext,
    ref: ModelRef | str,
    *,
    descendants: bool = False,
    max_depth: int | None = None,
) -> LineageGraph:
    """Walk ancestors (or descendants) through every relation, bounded in depth.

    Deployments are part of the graph: a deployment version's ancestors are its members
    (relation ``member:ROLE``) and theirs; a version's descendants include the deployment
    versions that pin it."""
    parsed = coerce_ref(ref)
    limit = context.limits.max_lineage_depth
    bound = min(max_depth or limit, limit)
    direction = "descendants" if descendants else "ancestors"
    with context.metadata.read() as tx:
        if tx.models.find(parsed.name) is None and tx.deployments.find(parsed.name) is not None:
            return _deployment_lineage(tx, parsed, direction, bound)
        root = resolve(tx, parsed)
        graph = LineageGraph(root=root.ref, direction=direction)
        graph.nodes[graph.root] = _node(tx, root)
        _walk(tx, graph, [root], bound)
    return graph


def _deployment_lineage(
    tx: StoreTransaction, ref: ModelRef, direction: str, bound: int
) -> LineageGraph:
    from mlprov.registry.deployments import resolve_deployment  # noqa: PLC0415

    key = resolve_deployment(tx, ref)
    version = tx.deployments.version_record(key)
    graph = LineageGraph(root=key.ref, direction=direction)
    graph.nodes[key.ref] = LineageNode(key.ref, version.bundle_digest, registered=True)
    if direction == "descendants":
        return graph  # nothing is made from a deployment
    frontier = []
    for member in version.members:
        model = tx.models.find(member.model)
        found = tx.versions.find(model, member.version) if model is not None else None
        assert found is not None  # foreign keys
        graph.edges.append(LineageEdgeView(key.ref, f"member:{member.role}", found.ref))
        if found.ref not in graph.nodes:
            graph.nodes[found.ref] = _node(tx, found)
            frontier.append(found)
    if bound > 1:
        _walk(tx, graph, frontier, bound - 1)
    else:
        graph.truncated = bool(frontier)
    return graph


def _walk(
    tx: StoreTransaction, graph: LineageGraph, frontier: list[VersionKey], bound: int
) -> None:
    descendants = graph.direction == "descendants"

    def edges_of(key: VersionKey) -> list[StoredEdge]:
        return tx.lineage.edges_into(key.id) if descendants else tx.lineage.edges_from(key.id)

    for _depth in range(bound):
        next_frontier: list[VersionKey] = []
        for key in frontier:
            if descendants:
                pins = tx.deployments.containing(key.name, key.number)
                for deployment, number, role, bundle_digest in pins:
                    pinned = f"{deployment}/{number}"
                    graph.edges.append(LineageEdgeView(pinned, f"member:{role}", key.ref))
                    graph.nodes.setdefault(
                        pinned, LineageNode(pinned, bundle_digest, registered=True)
                    )
            for edge in edges_of(key):
                other: VersionKey | None
                if descendants:
                    other = tx.versions.by_id(edge.version_id)
                    assert other is not None  # foreign keys
                    graph.edges.append(LineageEdgeView(other.ref, edge.relation, key.ref))
                elif edge.target_version_id is None:
                    other = None
                    uri = str(edge.target_uri)
                    graph.edges.append(LineageEdgeView(key.ref, edge.relation, uri))
                    graph.nodes.setdefault(uri, LineageNode(uri, edge.digest, registered=False))
                else:
                    other = tx.versions.by_id(edge.target_version_id)
                    assert other is not None  # foreign keys
                    graph.edges.append(LineageEdgeView(key.ref, edge.relation, other.ref))
                if other is not None and other.ref not in graph.nodes:
                    graph.nodes[other.ref] = _node(tx, other)
                    next_frontier.append(other)
        frontier = next_frontier
        if not frontier:
            break
    else:
        graph.truncated = any(edges_of(key) for key in frontier)
