"""``mlprov register PATH --name NAME ...``: a file or folder becomes the next version."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.cli._options import JsonOption, parse_pairs
from mlprov.cli._output import print_json, say
from mlprov.cli._progress import byte_progress
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError

if TYPE_CHECKING:
    from mlprov.records import ModelVersion
    from mlprov.registry import VersionInput

NameOption = Annotated[
    str, typer.Option("--name", "-n", metavar="NAME", help="Registered model name.")
]
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", metavar="KEY=VALUE", help="Param K=V (repeatable).")
]
ParamsFile = Annotated[
    Path | None, typer.Option("--params", metavar="FILE", help="JSON or YAML file of params.")
]
MetricOption = Annotated[
    list[str] | None, typer.Option("--metric", metavar="KEY=VALUE", help="Metric K=V (repeatable).")
]
MetricsFile = Annotated[
    Path | None, typer.Option("--metrics", metavar="FILE", help="JSON or YAML file of metrics.")
]
TagOption = Annotated[
    list[str] | None, typer.Option("--tag", metavar="KEY=VALUE", help="Tag K=V (repeatable).")
]
DatasetOption = Annotated[
    list[str] | None,
    typer.Option("--dataset", metavar="NAME=URI", help="Dataset NAME=URI@sha256:HEX (repeatable)."),
]
ParentOption = Annotated[
    list[str] | None,
    typer.Option(
        "--parent", metavar="REF", help="Parent version NAME@VERSION or NAME/VERSION (repeatable)."
    ),
]
LineageOption = Annotated[
    list[str] | None,
    typer.Option(
        "--lineage",
        metavar="RELATION=REF",
        help="Lineage edge RELATION=TARGET, e.g. base=llama/3 or teacher=hf://x@sha256:HEX.",
    ),
]
SourceOption = Annotated[
    str | None, typer.Option("--source", metavar="URI", help="Source URI of the artefact.")
]
RunIdOption = Annotated[str | None, typer.Option("--run-id", metavar="ID", help="Training run id.")]
CommitOption = Annotated[
    str | None, typer.Option("--commit", metavar="SHA", help="Code commit SHA.")
]
RepoOption = Annotated[
    str | None, typer.Option("--code-repo", metavar="URL", help="Code repository URL.")
]
DescriptionOption = Annotated[
    str, typer.Option("--description", metavar="TEXT", help="Version description.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
BuilderOption = Annotated[
    str | None,
    typer.Option("--builder-id", metavar="URI", help="URI of the system that trained the model."),
]
StartedOption = Annotated[
    str | None, typer.Option("--started", metavar="TIME", help="Run start, RFC 3339.")
]
FinishedOption = Annotated[
    str | None, typer.Option("--finished", metavar="TIME", help="Run end, RFC 3339.")
]
CardOption = Annotated[
    Path | None,
    typer.Option(
        "--card", metavar="FILE", help="Model card YAML (the prose; see docs/provenance.md)."
    ),
]
NoGitOption = Annotated[
    bool,
    typer.Option("--no-git", help="Do not detect the code repository and commit from git."),
]
EnvironmentOption = Annotated[
    bool,
    typer.Option(
        "--capture-environment",
        help="Record this Python environment's distributions (run where training ran).",
    ),
]


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
    builder_id: str | None = None,
    started: str | None = None,
    finished: str | None = None,
    card: Path | None = None,
    detect_git: bool = True,
    capture_environment: bool = False,
) -> VersionInput:
    """Build the service's VersionInput from the shared registration options."""
    from mlprov import provenance  # noqa: PLC0415
    from mlprov.registry import DatasetInput, LineageInput, VersionInput  # noqa: PLC0415

    all_params = provenance.load_params(params) if params else {}
    for key, value in parse_pairs(param, "param", typed=True).items():
        if key in all_params:
            raise InvalidInputError(f"param {key!r} is in the params file and given as a flag")
        all_params[key] = value
    all_metrics = provenance.load_metrics(metrics) if metrics else {}
    for item in metric or []:
        key, number = provenance.parse_metric_flag(item)
        if key in all_metrics:
            raise InvalidInputError(f"metric {key!r} is given twice")
        all_metrics[key] = number
    datasets = []
    for item in dataset or []:
        name, location, digest = provenance.parse_dataset_spec(item)
        ref = provenance.capture_dataset(name, location, digest=digest)
        datasets.append(DatasetInput(ref.name, ref.uri, ref.digest))
    edges = [LineageInput("parent", target) for target in parent or []]
    for item in lineage or []:
        relation, sep, target = item.partition("=")
        if not sep or not target:
            raise InvalidInputError(f"invalid lineage {item[:80]!r}: use RELATION=TARGET")
        edges.append(LineageInput(relation.strip(), target.strip()))
    dirty: bool | None = None
    if detect_git and commit is None:
        git = provenance.detect_git(Path.cwd())
        if git is not None:
            commit, dirty = git.commit, git.dirty
            code_repo = code_repo or git.repo_url
    environment = provenance.capture_environment().lock_lines if capture_environment else None
    return VersionInput(
        params=all_params,
        metrics=all_metrics,
        tags=parse_pairs(tag, "tag", typed=False),
        description=description,
        datasets=datasets,
        lineage=edges,
        source_uri=source,
        run_id=run_id,
        code_repo=code_repo,
        code_commit=commit,
        code_dirty=dirty,
        builder_id=builder_id,
        started_at=provenance.utc_timestamp(_when(started)) if started else None,
        finished_at=provenance.utc_timestamp(_when(finished)) if finished else None,
        environment=environment,
        card=provenance.load_card(card).to_json() if card else None,
    )


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInputError(f"invalid time {text[:40]!r}: use ISO 8601 / RFC 3339") from e
    if value.tzinfo is None:
        raise InvalidInputError(f"time {text[:40]!r} has no timezone: add Z or +00:00")
    return value


def register(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Model file or folder.")],
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
    builder_id: BuilderOption = None,
    started: StartedOption = None,
    finished: FinishedOption = None,
    card: CardOption = None,
    no_git: NoGitOption = False,
    capture_environment: EnvironmentOption = False,
    hash_algorithm: Annotated[
        str,
        typer.Option("--hash", metavar="ALGORITHM", help="File digest: sha256, blake2b or blake3."),
    ] = "sha256",
    allow_symlinks: Annotated[
        bool, typer.Option("--allow-symlinks", help="Follow symlinks that stay inside the model.")
    ] = False,
    ignore_paths: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore-paths",
            metavar="PATH",
            help="Path (relative to the model root) left out of the version (repeatable); "
            "model.sig is always left out.",
        ),
    ] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Register a file or folder as the model's next version."""
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
        builder_id=builder_id,
        started=started,
        finished=finished,
        card=card,
        detect_git=not no_git,
        capture_environment=capture_environment,
    )
    cli = state(ctx)
    if cli.client_mode:
        # Hashed here, uploaded blob by blob, registered in one idempotent request.
        record = cli.registry().register(
            path,
            name,
            info,
            hash_algorithm=hash_algorithm,
            ignore_paths=list(ignore_paths or []),
            allow_symlinks=allow_symlinks,
        )
        _report_registered(record, as_json=as_json)
        return
    registry = cli.local_registry("register")
    prepared = registry.prepare_version(
        path,
        name,
        info,
        hash_algorithm=hash_algorithm,
        ignore_paths=list(ignore_paths or []),
        allow_symlinks=allow_symlinks,
    )
    total = sum(f.size for f in prepared.files)
    with byte_progress(f"registering {name}", total, quiet=quiet) as progress:
        stored = registry.store_files(prepared, progress=progress)
        record = registry.commit_version(prepared, stored)
    _report_registered(record, as_json=as_json)


def _report_registered(record: ModelVersion, *, as_json: bool) -> None:
    if as_json:
        print_json(record.to_json())
    else:
        say(f"registered {record.ref} {record.digest}")


def install(app: typer.Typer) -> None:
    app.command("register")(register)
