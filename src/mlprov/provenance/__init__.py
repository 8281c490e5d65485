"""Provenance documents for a registered version: SLSA provenance, ML-BOM, model card.

Stable API (what ``__all__`` lists). Everything is pure and deterministic except the
``capture_*``/``detect_git``/``load_*``/``start_run`` functions, which read the outside
world (files, git, installed distributions, the clock) and are meant to run in the
training job::

    inputs = ProvenanceInputs.from_version(
        version,                                  # a mlprov.records.ModelVersion
        run=run.finish(),                         # RunInfo from start_run()
        git=detect_git("."),
        environment=capture_environment(),
        card=load_card("card.yaml"),
    )
    slsa_provenance(inputs)        # bytes: in-toto Statement v1, SLSA Provenance v1
    cyclonedx_bom(inputs)          # bytes: CycloneDX 1.6 JSON
    statement_for_bom(inputs)      # bytes: in-toto Statement, predicate = the BOM
    model_card(inputs)             # str: Markdown with Hugging Face front matter
    model_card_statement(inputs)   # bytes: in-toto Statement, mlprov model-card predicate

Every statement has the same single subject: the model name and its OMS subject digest
(the manifest root, ``{"sha256": hex}``). Bytes are canonical JSON (sorted keys, no
spaces, UTF-8): sign them as they are, never re-serialise them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlprov.errors import InvalidInputError
from mlprov.lazy_exports import lazy_exports
from mlprov.manifest import Digest
from mlprov.provenance._statement import (
    STATEMENT_TYPE,
    ResourceDescriptor,
    Statement,
    canonical_json,
    format_timestamp,
)
from mlprov.records import DatasetRef, FileFormat, LineageEdge, ModelVersion
from mlprov.refs import validate_model_name

if TYPE_CHECKING:
    from mlprov.provenance._capture import (
        LOCAL_BUILDER_ID,
        Environment,
        GitInfo,
        MetricKey,
        Package,
        RunInfo,
        capture_dataset,
        capture_environment,
        detect_git,
        flatten_params,
        load_card,
        load_document,
        load_metrics,
        load_params,
        normalize_metrics,
        normalize_repo_url,
        parse_dataset_spec,
        parse_metric_flag,
        start_run,
        utc_timestamp,
    )
    from mlprov.provenance._cyclonedx import (
        check_bom_refs,
        find_bom_ref_problems,
    )
    from mlprov.provenance._formats import (
        FORMAT_LABELS,
        PICKLE_ALLOWED_GLOBALS,
        detect_format,
        scan_pickle,
    )
    from mlprov.provenance._model_card import (
        NO_INFORMATION,
        ModelCardSpec,
    )
    from mlprov.provenance._slsa import (
        SLSA_PREDICATE_TYPE,
        TRAINING_BUILD_TYPE,
    )

#: Where each public name of the submodules lives: imported on first use (PEP 562), so
#: a caller that needs only statements (an export's listing, a deployment's bundle
#: statement) does not import the ML-BOM, model-card and capture code with YAML
#: and CycloneDX behind them.
_HOMES = {
    "LOCAL_BUILDER_ID": "mlprov.provenance._capture",
    "Environment": "mlprov.provenance._capture",
    "GitInfo": "mlprov.provenance._capture",
    "MetricKey": "mlprov.provenance._capture",
    "Package": "mlprov.provenance._capture",
    "RunInfo": "mlprov.provenance._capture",
    "capture_dataset": "mlprov.provenance._capture",
    "capture_environment": "mlprov.provenance._capture",
    "detect_git": "mlprov.provenance._capture",
    "flatten_params": "mlprov.provenance._capture",
    "load_card": "mlprov.provenance._capture",
    "load_document": "mlprov.provenance._capture",
    "load_metrics": "mlprov.provenance._capture",
    "load_params": "mlprov.provenance._capture",
    "normalize_metrics": "mlprov.provenance._capture",
    "normalize_repo_url": "mlprov.provenance._capture",
    "parse_dataset_spec": "mlprov.provenance._capture",
    "parse_metric_flag": "mlprov.provenance._capture",
    "start_run": "mlprov.provenance._capture",
    "utc_timestamp": "mlprov.provenance._capture",
    "check_bom_refs": "mlprov.provenance._cyclonedx",
    "find_bom_ref_problems": "mlprov.provenance._cyclonedx",
    "FORMAT_LABELS": "mlprov.provenance._formats",
    "PICKLE_ALLOWED_GLOBALS": "mlprov.provenance._formats",
    "detect_format": "mlprov.provenance._formats",
    "scan_pickle": "mlprov.provenance._formats",
    "NO_INFORMATION": "mlprov.provenance._model_card",
    "ModelCardSpec": "mlprov.provenance._model_card",
    "SLSA_PREDICATE_TYPE": "mlprov.provenance._slsa",
    "TRAINING_BUILD_TYPE": "mlprov.provenance._slsa",
}

__all__ = [
    "CYCLONEDX_PREDICATE_TYPE",
    "FORMAT_LABELS",
    "LOCAL_BUILDER_ID",
    "MODEL_CARD_PREDICATE_TYPE",
    "NO_INFORMATION",
    "PICKLE_ALLOWED_GLOBALS",
    "SLSA_PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "TRAINING_BUILD_TYPE",
    "Environment",
    "GitInfo",
    "MetricKey",
    "ModelCardSpec",
    "Package",
    "ProvenanceInputs",
    "ResourceDescriptor",
    "RunInfo",
    "Statement",
    "canonical_json",
    "capture_dataset",
    "capture_environment",
    "check_bom_refs",
    "cyclonedx_bom",
    "detect_format",
    "detect_git",
    "find_bom_ref_problems",
    "flatten_params",
    "format_timestamp",
    "load_card",
    "load_document",
    "load_metrics",
    "load_params",
    "model_card",
    "model_card_statement",
    "normalize_metrics",
    "normalize_repo_url",
    "parse_dataset_spec",
    "parse_metric_flag",
    "scan_pickle",
    "slsa_provenance",
    "start_run",
    "statement_for_bom",
    "utc_timestamp",
]

#: Predicate type of an in-toto statement carrying a CycloneDX BOM (in-toto predicate list).
CYCLONEDX_PREDICATE_TYPE = "https://cyclonedx.org/bom"

#: Predicate type of mlprov's model-card statement (docs/provenance.md, "Model card").
MODEL_CARD_PREDICATE_TYPE = "https://mlprov.dev/model-card/v1"

_COMMIT = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")


def _timestamp_or_none(value: str | None) -> str | None:
    return format_timestamp(value) if value is not None else None


@dataclass(frozen=True, kw_only=True)
class ProvenanceInputs:
    """Everything the documents are made from: a version's record plus what the
    training job captured. Validated and normalised on construction (digests parsed,
    timestamps in RFC 3339 UTC, metrics in the canonical flat shape, datasets and
    lineage sorted, repository URL without credentials), so two equal inputs give the
    same bytes whatever order they were given in.
    """

    name: str
    version: int
    digest: str
    artifact_name: str
    created_at: str
    created_by: str = ""
    hash_algorithm: str = "sha256"
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    datasets: Sequence[DatasetRef] = ()
    lineage: Sequence[LineageEdge] = ()
    code_repo: str | None = None
    code_commit: str | None = None
    code_dirty: bool | None = None
    run_id: str | None = None
    builder_id: str | None = None
    started_on: str | None = None
    finished_on: str | None = None
    environment: Environment | None = None
    card: ModelCardSpec | None = None
    #: Each artefact file's format by content (:func:`detect_format`); empty when the
    #: version was registered before formats were detected.
    formats: Sequence[FileFormat] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        validate_model_name(self.name)
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise InvalidInputError(f"{self.name}: version must be a positive integer")
        set_(self, "digest", str(Digest.parse(self.digest)))
        if not self.artifact_name.strip():
            raise InvalidInputError(f"{self.name}/{self.version}: artifact name is empty")
        set_(self, "created_at", format_timestamp(self.created_at, "created_at"))
        # A deep, JSON-only copy: later changes to the caller's dict cannot leak in.
        set_(self, "params", json.loads(canonical_json(dict(self.params), "params")))
        from mlprov.provenance._capture import normalize_metrics, normalize_repo_url  # noqa: PLC0415

        set_(self, "metrics", normalize_metrics(self.metrics, numbers_only=False))

        datasets: dict[str, DatasetRef] = {}
        for dataset in self.datasets:
            Digest.parse(dataset.digest)
            known = datasets.get(dataset.name)
            if known is not None and known != dataset:
                raise InvalidInputError(
                    f"{self.name}/{self.version}: two different datasets are named {dataset.name!r}"
                )
            datasets[dataset.name] = dataset
        set_(self, "datasets", tuple(datasets[n] for n in sorted(datasets)))
        for edge in self.lineage:
            Digest.parse(edge.digest)
        set_(
            self,
            "lineage",
            tuple(sorted(set(self.lineage), key=lambda e: (e.relation, e.target, e.digest))),
        )

        paths = [f.path for f in self.formats]
        if len(set(paths)) != len(paths):
            raise InvalidInputError(f"{self.name}/{self.version}: a file's format is given twice")
        set_(self, "formats", tuple(sorted(self.formats, key=lambda f: f.path)))

        if self.code_commit is not None and not _COMMIT.match(self.code_commit):
            raise InvalidInputError(
                f"code commit {self.code_commit[:80]!r} is not a full lower-case hex git "
                "commit id (40 or 64 characters)"
            )
        if self.code_repo is not None:
            set_(self, "code_repo", normalize_repo_url(self.code_repo) or None)
        for name in ("started_on", "finished_on"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, format_timestamp(value, name))
        if (
            self.started_on is not None
            and self.finished_on is not None
            and datetime.fromisoformat(self.finished_on.replace("Z", "+00:00"))
            < datetime.fromisoformat(self.started_on.replace("Z", "+00:00"))
        ):
            raise InvalidInputError(
                f"{self.name}/{self.version}: finished ({self.finished_on}) before it "
                f"started ({self.started_on})"
            )

    @classmethod
    def from_version(
        cls,
        version: ModelVersion,
        *,
        run: RunInfo | None = None,
        git: GitInfo | None = None,
        environment: Environment | None = None,
        card: ModelCardSpec | None = None,
    ) -> ProvenanceInputs:
        """Inputs for a registered version plus what the training job captured.

        The version's record wins; captured facts fill what it lacks (builder id, times,
        dirty flag, environment, card). A captured fact that contradicts the record
        (another run, commit, builder, environment or card) is refused rather than
        silently mixed in. Records without the training-capture fields (``code_dirty``,
        ``builder_id``, ``started_at``, ``finished_at``, ``environment``, ``card``) work too.
        """
        recorded_dirty: bool | None = getattr(version, "code_dirty", None)
        recorded_builder: str | None = getattr(version, "builder_id", None)
        recorded_started: str | None = getattr(version, "started_at", None)
        recorded_finished: str | None = getattr(version, "finished_at", None)
        recorded_lock: list[str] | None = getattr(version, "environment", None)
        recorded_card: Mapping[str, Any] | None = getattr(version, "card", None)
        from mlprov.provenance._capture import Environment  # noqa: PLC0415
        from mlprov.provenance._model_card import ModelCardSpec  # noqa: PLC0415

        recorded_environment = (
            Environment.from_lock(recorded_lock) if recorded_lock is not None else None
        )
        recorded_spec = (
            ModelCardSpec.parse(recorded_card, f"{version.ref} card")
            if recorded_card is not None
            else None
        )

        def pick(what: str, recorded: Any, captured: Any) -> Any:
            if recorded is not None and captured is not None and recorded != captured:
                raise InvalidInputError(
                    f"{version.ref}: the captured {what} ({str(captured)[:80]}) is not the "
                    f"one recorded with the version ({str(recorded)[:80]})"
                )
            return recorded if recorded is not None else captured

        run_id = pick("run", version.run_id, run.run_id if run is not None else None)
        code_commit = pick("commit", version.code_commit, git.commit if git is not None else None)
        captured_dirty = git.dirty if git is not None and git.commit == code_commit else None
        return cls(
            name=version.name,
            version=version.version,
            digest=version.digest,
            artifact_name=version.artifact_name,
            created_at=version.created_at,
            created_by=version.created_by,
            hash_algorithm=version.hash_algorithm,
            description=version.description,
            params=version.params,
            metrics=version.metrics,
            datasets=tuple(version.datasets),
            lineage=tuple(version.lineage),
            code_repo=version.code_repo or (git.repo_url if git is not None else None),
            code_commit=code_commit,
            code_dirty=pick("dirty flag", recorded_dirty, captured_dirty),
            run_id=run_id,
            builder_id=pick(
                "builder id", recorded_builder, run.builder_id if run is not None else None
            ),
            started_on=pick(
                "start time",
                _timestamp_or_none(recorded_started),
                run.started_on if run is not None else None,
            ),
            finished_on=pick(
                "finish time",
                _timestamp_or_none(recorded_finished),
                run.finished_on if run is not None else None,
            ),
            environment=pick("environment", recorded_environment, environment),
            card=pick("model card", recorded_spec, card),
            formats=tuple(getattr(version, "formats", None) or ()),
        )

    @property
    def subject(self) -> ResourceDescriptor:
        """The subject of every statement about this version."""
        from mlprov.provenance._slsa import model_subject  # noqa: PLC0415

        return model_subject(self)


def slsa_provenance(inputs: ProvenanceInputs) -> bytes:
    """SLSA Provenance v1 as in-toto Statement v1 bytes (build type
    :data:`TRAINING_BUILD_TYPE`). Refused without a builder id."""
    from mlprov.provenance._slsa import slsa_statement  # noqa: PLC0415

    return slsa_statement(inputs).to_bytes()


def cyclonedx_bom(inputs: ProvenanceInputs) -> bytes:
    """The CycloneDX 1.6 ML-BOM as canonical JSON bytes."""
    from mlprov.provenance._cyclonedx import bom_document  # noqa: PLC0415

    return canonical_json(bom_document(inputs), "CycloneDX BOM")


def statement_for_bom(inputs: ProvenanceInputs) -> bytes:
    """An in-toto Statement v1 whose predicate is the ML-BOM
    (predicate type :data:`CYCLONEDX_PREDICATE_TYPE`)."""
    from mlprov.provenance._cyclonedx import bom_document  # noqa: PLC0415

    return Statement(
        subject=(inputs.subject,),
        predicate_type=CYCLONEDX_PREDICATE_TYPE,
        predicate=bom_document(inputs),
    ).to_bytes()


def model_card(inputs: ProvenanceInputs) -> str:
    """The model card as Markdown with Hugging Face YAML front matter."""
    from mlprov.provenance._model_card import render_model_card  # noqa: PLC0415

    return render_model_card(inputs)


def model_card_statement(inputs: ProvenanceInputs) -> bytes:
    """An in-toto Statement v1 (predicate type :data:`MODEL_CARD_PREDICATE_TYPE`) whose
    predicate holds the Markdown card and the structured card it was made from."""
    from mlprov.provenance._model_card import card_predicate  # noqa: PLC0415

    return Statement(
        subject=(inputs.subject,),
        predicate_type=MODEL_CARD_PREDICATE_TYPE,
        predicate=card_predicate(inputs),
    ).to_bytes()


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
