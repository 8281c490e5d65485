"""``mlprov register PATH --name NAME ...``: a file or folder becomes the next version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import JsonOption, load_mapping_file, parse_pairs
from mlprov.cli._output import print_json, say
from mlprov.cli._progress import byte_progress
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError

NameOption = Annotated[str, typer.Option("--name", "-n", help="Registered model name.")]
ParamOption = Annotated[list[str] | None, typer.Option("--param", help="Param K=V (repeatable).")]
ParamsFile = Annotated[Path | None, typer.Option("--params", help="JSON or YAML file of params.")]
MetricOption = Annotated[
    list[str] | None, typer.Option("--metric", help="Metric K=V (repeatable).")
]
MetricsFile = Annotated[
    Path | None, typer.Option("--metrics", help="JSON or YAML file of metrics.")
]
TagOption = Annotated[list[str] | None, typer.Option("--tag", help="Tag K=V (repeatable).")]
DatasetOption = Annotated[
    list[str] | None,
    typer.Option("--dataset", help="Dataset NAME=URI@sha256:HEX (repeatable)."),
]
ParentOption = Annotated[
    list[str] | None,
    typer.Option("--parent", help="Parent version NAME@VERSION or NAME/VERSION (repeatable)."),
]
LineageOption = Annotated[
    list[str] | None,
    typer.Option(
        "--lineage",
        help="Lineage edge RELATION=TARGET, e.g. base=llama/3 or teacher=hf://x@sha256:HEX.",
    ),
]
SourceOption = Annotated[str | None, typer.Option("--source", help="Source URI of the artefact.")]
RunIdOption = Annotated[str | None, typer.Option("--run-id", help="Training run id.")]
CommitOption = Annotated[str | None, typer.Option("--commit", help="Code commit SHA.")]
RepoOption = Annotated[str | None, typer.Option("--code-repo", help="Code repository URL.")]
DescriptionOption = Annotated[str, typer.Option("--description", help="Version description.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def version_input(
    *,
    param: list[str] | None,
    params: Path | None,
    metric: list[str] | None,
    metrics: Path | None,
    tag: list[str] | None,
    dataset: list[str] | None,
    parent: list[str] | None,
    lineage: list[str] | None,
    source: str | None,
    run_id: str | None,
    commit: str | None,
    code_repo: str | None,
    description: str,
) -> object:
    """Build the service's VersionInput from the shared registration options."""
    from mlprov.service import DatasetInput, LineageInput, VersionInput  # noqa: PLC0415

    all_params = load_mapping_file(params, "params") if params else {}
    all_params.update(parse_pairs(param, "param", typed=True))
    all_metrics = load_mapping_file(metrics, "metrics") if metrics else {}
    all_metrics.update(parse_pairs(metric, "metric", typed=True))
    edges = [LineageInput("parent", target) for target in parent or []]
    for item in lineage or []:
        relation, sep, target = item.partition("=")
        if not sep or not target:
            raise InvalidInputError(f"invalid lineage {item[:80]!r}: use RELATION=TARGET")
        edges.append(LineageInput(relation.strip(), target.strip()))
    return VersionInput(
        params=all_params,
        metrics=all_metrics,
        tags=parse_pairs(tag, "tag", typed=False),
        description=description,
        datasets=[DatasetInput.parse(item) for item in dataset or []],
        lineage=edges,
        source_uri=source,
        run_id=run_id,
        code_repo=code_repo,
        code_commit=commit,
    )


def register(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Model file or folder.")],
    name: NameOption,
    param: ParamOption = None,
    params: ParamsFile = None,
    metric: MetricOption = None,
    metrics: MetricsFile = None,
    tag: TagOption = None,
    dataset: DatasetOption = None,
    parent: ParentOption = None,
    lineage: LineageOption = None,
    source: SourceOption = None,
    run_id: RunIdOption = None,
    commit: CommitOption = None,
    code_repo: RepoOption = None,
    description: DescriptionOption = "",
    hash_algorithm: Annotated[
        str, typer.Option("--hash", help="sha256, blake2b or blake3.")
    ] = "sha256",
    allow_symlinks: Annotated[bool, typer.Option("--allow-symlinks")] = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Register a file or folder as the model's next version."""
    from mlprov.service import VersionInput  # noqa: PLC0415

    info = version_input(
        param=param,
        params=params,
        metric=metric,
        metrics=metrics,
        tag=tag,
        dataset=dataset,
        parent=parent,
        lineage=lineage,
        source=source,
        run_id=run_id,
        commit=commit,
        code_repo=code_repo,
        description=description,
    )
    assert isinstance(info, VersionInput)
    registry = state(ctx).registry()
    prepared = registry.prepare_version(
        path, name, info, hash_algorithm=hash_algorithm, allow_symlinks=allow_symlinks
    )
    total = 2 * sum(f.size for f in prepared.files)
    with (
        byte_progress(f"registering {name}", total, quiet=quiet) as progress,
        registry.stored_files(prepared, progress=progress) as stored,
    ):
        record = registry.commit_version(prepared, stored)
    if as_json:
        print_json(record.to_json())
    else:
        say(f"registered {record.ref} {record.digest}")


def install(app: typer.Typer) -> None:
    app.command("register")(register)
