"""``mlprov versions list|show|tag|describe``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from mlprov.cli._options import JsonOption, ReasonOption, WideOption, parse_pairs
from mlprov.cli._output import (
    Cell,
    human_size,
    print_json,
    print_table,
    say,
    short_digest,
    short_signer,
    short_time,
)
from mlprov.cli._state import state
from mlprov.records import ModelVersion, Stage

versions_app = typer.Typer(help="Versions of a registered model.", no_args_is_help=True)


@versions_app.command("list")
def list_versions(
    ctx: typer.Context, name: str, as_json: JsonOption = False, wide: WideOption = False
) -> None:
    """List a model's versions."""
    records = state(ctx).registry().list_versions(name)
    if as_json:
        print_json([r.to_json() for r in records])
        return
    print_table(
        f"Versions of {name}",
        ["version", "digest", "size", "stage", "aliases", "created"],
        (
            (
                r.version,
                short_digest(r.digest, wide=wide),
                human_size(r.size, wide=wide),
                _stage(r),
                sorted(r.aliases),
                short_time(r.created_at, wide=wide),
            )
            for r in records
        ),
        wide=wide,
    )


def _stage(record: ModelVersion) -> str:
    return "-" if record.stage is Stage.NONE else record.stage.value


def _formats(record: ModelVersion) -> list[str] | str:
    """Each file's format by content, with the globals a pickle imports."""
    if record.formats is None:
        return "not detected (registered before formats were)"
    return [
        f"{f.path}: {f.format}" + (f" (imports {', '.join(f.imports)})" if f.imports else "")
        for f in record.formats
    ]


def show_version_table(record: ModelVersion, *, wide: bool = False) -> None:
    files = "file" if record.file_count == 1 else "files"
    rows: list[tuple[str, Cell]] = [
        ("version", record.ref),
        ("digest", short_digest(record.digest, wide=wide)),
        (
            "files",
            f"{record.file_count} {files}, {human_size(record.size, wide=wide)} "
            f"({record.hash_algorithm})",
        ),
        ("stage", _stage(record)),
        ("aliases", sorted(record.aliases)),
        ("created", f"{short_time(record.created_at, wide=wide)} by {record.created_by}"),
        ("description", record.description),
        ("source", record.source_uri or ""),
        ("run id", record.run_id or ""),
        ("code", " ".join(x for x in (record.code_repo, record.code_commit) if x)),
        ("params", _flat(record.params)),
        ("metrics", _flat(record.metrics)),
        ("tags", [f"{k}={v}" for k, v in sorted(record.tags.items())]),
        (
            "datasets",
            [f"{d.name}={d.uri} ({short_digest(d.digest, wide=wide)})" for d in record.datasets],
        ),
        (
            "lineage",
            [
                f"{e.relation}: {e.target} ({short_digest(e.digest, wide=wide)})"
                for e in record.lineage
            ],
        ),
        (
            "evidence",
            [f"{e.kind} by {short_signer(e.signer, wide=wide)}" for e in record.evidence],
        ),
        ("formats", _formats(record)),
    ]
    print_table(f"Version {record.ref}", ["field", "value"], rows, wide=wide)


def _flat(values: dict[str, Any], prefix: str = "") -> list[str]:
    """``optim.lr = 0.1``: one line per leaf, names as written (``auc[segment=retail]``)."""
    lines: list[str] = []
    for key in sorted(values):
        value = values[key]
        if isinstance(value, dict) and value:
            lines.extend(_flat(value, f"{prefix}{key}."))
        else:
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"{prefix}{key} = {shown}")
    return lines


@versions_app.command("show")
def show_version(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(metavar="REF", help="NAME/VERSION, NAME@ALIAS or a models:/ URI.")
    ],
    files: Annotated[
        bool, typer.Option("--files", help="Also list every file (with --json: a files list).")
    ] = False,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Show one version (and with --files its manifest)."""
    registry = state(ctx).registry()
    record = registry.get_version(ref)
    manifest = registry.manifest(record.ref) if files else None
    if as_json:
        document = record.to_json()
        if manifest is not None:
            document["files"] = [
                {"path": f.path, "size": f.size, "digest": str(f.digest)} for f in manifest
            ]
        print_json(document)
        return
    show_version_table(record, wide=wide)
    if manifest is not None:
        print_table(
            "Files",
            ["path", "size", "digest"],
            (
                (
                    f.path,
                    None if f.size is None else human_size(f.size, wide=wide),
                    short_digest(str(f.digest), wide=wide),
                )
                for f in manifest
            ),
            wide=wide,
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
