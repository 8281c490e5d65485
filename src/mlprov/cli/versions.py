"""``mlprov versions list|show|tag|describe``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.cli._options import JsonOption, ReasonOption, parse_pairs
from mlprov.cli._output import dump_json, print_json, print_table, say
from mlprov.cli._state import state

if TYPE_CHECKING:
    from mlprov.records import ModelVersion

versions_app = typer.Typer(help="Versions of a registered model.", no_args_is_help=True)


@versions_app.command("list")
def list_versions(ctx: typer.Context, name: str, as_json: JsonOption = False) -> None:
    """List a model's versions."""
    records = state(ctx).registry().list_versions(name)
    if as_json:
        print_json([r.to_json() for r in records])
        return
    print_table(
        f"Versions of {name}",
        ["version", "digest", "files", "size", "stage", "aliases", "created"],
        (
            (
                r.version,
                r.digest[:19] + "...",
                r.file_count,
                r.size,
                r.stage.value,
                ", ".join(r.aliases),
                f"{r.created_at} by {r.created_by}",
            )
            for r in records
        ),
    )


def show_version_table(record: ModelVersion) -> None:
    rows: list[tuple[str, object]] = [
        ("version", record.ref),
        ("digest", record.digest),
        ("files", f"{record.file_count} ({record.size} bytes, {record.hash_algorithm})"),
        ("stage", record.stage.value),
        ("aliases", ", ".join(record.aliases)),
        ("created", f"{record.created_at} by {record.created_by}"),
        ("description", record.description),
        ("source", record.source_uri or ""),
        ("run id", record.run_id or ""),
        ("code", " ".join(x for x in (record.code_repo, record.code_commit) if x)),
        ("params", dump_json(record.params) if record.params else ""),
        ("metrics", dump_json(record.metrics) if record.metrics else ""),
        ("tags", ", ".join(f"{k}={v}" for k, v in sorted(record.tags.items()))),
        ("datasets", "\n".join(f"{d.name}={d.uri}@{d.digest}" for d in record.datasets)),
        (
            "lineage",
            "\n".join(f"{e.relation}: {e.target} ({e.digest})" for e in record.lineage),
        ),
        (
            "evidence",
            "\n".join(f"{e.kind}: {e.predicate_type} by {e.signer}" for e in record.evidence),
        ),
    ]
    print_table(f"Version {record.ref}", ["field", "value"], rows)


@versions_app.command("show")
def show_version(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(metavar="REF", help="NAME/VERSION, NAME@ALIAS or a models:/ URI.")
    ],
    files: Annotated[bool, typer.Option("--files", help="Also list every file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show one version (and with --files its manifest)."""
    registry = state(ctx).registry()
    record = registry.get_version(ref)
    manifest = registry.manifest(record.ref) if files or as_json else None
    if as_json:
        document = record.to_json()
        if manifest is not None:
            document["files"] = [
                {"path": f.path, "size": f.size, "digest": str(f.digest)} for f in manifest
            ]
        print_json(document)
        return
    show_version_table(record)
    if manifest is not None:
        print_table(
            "Files", ["path", "size", "digest"], ((f.path, f.size, str(f.digest)) for f in manifest)
        )


@versions_app.command("tag")
def tag_version(
    ctx: typer.Context,
    ref: str,
    tags: Annotated[
        list[str] | None, typer.Argument(metavar="KEY=VALUE", help="Tags to set.")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", metavar="KEY", help="Tag key to remove.")
    ] = None,
    reason: ReasonOption = "",
) -> None:
    """Set or remove version tags (audited; the only change a version allows besides its
    description)."""
    changes: dict[str, str | None] = dict(parse_pairs(tags, "tag", typed=False))
    changes.update(dict.fromkeys(remove or []))
    record = state(ctx).registry().tag_version(ref, changes, reason=reason)
    say(f"tagged {record.ref}")


@versions_app.command("describe")
def describe_version(ctx: typer.Context, ref: str, description: str) -> None:
    """Replace a version's description (audited)."""
    record = state(ctx).registry().describe_version(ref, description)
    say(f"described {record.ref}")


def install(app: typer.Typer) -> None:
    app.add_typer(versions_app, name="versions")
