"""Lineage graphs: pure values and their renderings (tree, JSON, Mermaid).

The registry service walks the stored edges (IO) and hands the nodes and edges it found
to :class:`LineageGraph`; everything here is pure. A walk is bounded in depth
(``Limits.max_lineage_depth``) and never revisits a node, so even a corrupted store with
a cycle cannot make it loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LineageEdgeView", "LineageGraph", "LineageNode"]


@dataclass(frozen=True)
class LineageNode:
    """A version in the graph, or an external artefact (``registered`` False)."""

    key: str  # "name/3" or the external URI
    digest: str
    registered: bool
    datasets: tuple[tuple[str, str, str], ...] = ()  # (name, uri, digest)
    code_repo: str | None = None
    code_commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "digest": self.digest,
            "registered": self.registered,
            "datasets": [{"name": n, "uri": u, "digest": d} for n, u, d in self.datasets],
            "code_repo": self.code_repo,
            "code_commit": self.code_commit,
        }


@dataclass(frozen=True)
class LineageEdgeView:
    """``child`` was made from ``parent`` by ``relation`` (parent, base, teacher, ...)."""

    child: str
    relation: str
    parent: str


@dataclass
class LineageGraph:
    root: str
    direction: str  # "ancestors" or "descendants"
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: list[LineageEdgeView] = field(default_factory=list)
    truncated: bool = False  # the depth bound stopped the walk somewhere

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "direction": self.direction,
            "truncated": self.truncated,
            "nodes": [self.nodes[k].to_json() for k in sorted(self.nodes)],
            "edges": [
                {"child": e.child, "relation": e.relation, "parent": e.parent}
                for e in sorted(self.edges, key=lambda e: (e.child, e.relation, e.parent))
            ],
        }

    def _next(self, key: str) -> list[tuple[str, str]]:
        """(relation, neighbour) pairs one step further from the root."""
        if self.direction == "ancestors":
            pairs = [(e.relation, e.parent) for e in self.edges if e.child == key]
        else:
            pairs = [(e.relation, e.child) for e in self.edges if e.parent == key]
        return sorted(pairs)

    def _label(self, key: str) -> str:
        node = self.nodes[key]
        parts = [key, node.digest[:19] + "..." if len(node.digest) > 22 else node.digest]
        if node.code_commit:
            parts.append(f"commit {node.code_commit[:12]}")
        if node.datasets:
            parts.append("data " + ", ".join(name for name, _, _ in node.datasets))
        return "  ".join(parts)

    def to_tree(self) -> str:
        """An indented tree for people; a node reached twice is shown once, then named."""
        lines = [self._label(self.root)]
        seen = {self.root}

        def walk(key: str, prefix: str) -> None:
            children = self._next(key)
            for index, (relation, other) in enumerate(children):
                last = index == len(children) - 1
                branch = "└── " if last else "├── "
                if other in seen:
                    lines.append(f"{prefix}{branch}{relation}: {other} (shown above)")
                    continue
                seen.add(other)
                lines.append(f"{prefix}{branch}{relation}: {self._label(other)}")
                walk(other, prefix + ("    " if last else "│   "))

        walk(self.root, "")
        if self.truncated:
            lines.append("(depth limit reached: the graph continues beyond this)")
        return "\n".join(lines)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart (``graph BT``: parents above children)."""
        ids = {key: f"n{index}" for index, key in enumerate(sorted(self.nodes))}
        lines = ["graph BT"]
        for key in sorted(self.nodes):
            node = self.nodes[key]
            text = _mermaid_text(key + ("" if node.registered else " (external)"))
            lines.append(f'    {ids[key]}["{text}"]')
        for edge in sorted(self.edges, key=lambda e: (e.child, e.relation, e.parent)):
            lines.append(
                f"    {ids[edge.child]} -->|{_mermaid_text(edge.relation)}| {ids[edge.parent]}"
            )
        return "\n".join(lines)


_UNSAFE_MERMAID = re.compile(r'["<>|\[\]{}]')


def _mermaid_text(text: str) -> str:
    # Mermaid labels break on quotes, brackets and pipes; replace them.
    return _UNSAFE_MERMAID.sub("_", text)
