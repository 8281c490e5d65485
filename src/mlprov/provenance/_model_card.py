"""Model cards after Mitchell et al. (2019), "Model Cards for Model Reporting".

A card is generated from two sources and never from anything else:

* the version's recorded metadata (name, digest, datasets, lineage, metrics, code, run);
* a user-written card file (prose), validated by :class:`ModelCardSpec`: strict,
  ``extra="forbid"``, so a misspelt key is an error with a one-line message.

The Markdown has the nine sections of the paper in its order (Model details, Intended
use, Factors, Metrics, Evaluation data, Training data, Quantitative analyses, Ethical
considerations, Caveats and recommendations). A section or sub-section with nothing to
say says "No information provided." rather than inventing text.

It starts with Hugging Face model card metadata (YAML front matter between ``---``
lines: ``license``, ``tags``, ``datasets``, ``metrics`` and, when it can be stated
without guessing, a one-result ``model-index``), so the file can be published as a
``README.md`` on the Hub. Pure: nothing here opens a file.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlprov.errors import InvalidInputError, MalformedDocumentError
from mlprov.provenance._capture import MetricKey
from mlprov.provenance._statement import canonical_json

if TYPE_CHECKING:
    from mlprov.provenance import ProvenanceInputs
    from mlprov.records import DatasetRef

__all__ = [
    "NO_INFORMATION",
    "Caveats",
    "DataInfo",
    "EthicalConsideration",
    "Factors",
    "FairnessAssessment",
    "IntendedUse",
    "MetricsInfo",
    "ModelCardSpec",
    "ModelDetails",
    "card_predicate",
    "metric_text",
    "render_model_card",
]

NO_INFORMATION = "No information provided."

#: CycloneDX 1.6 ``modelParameters.approach.type`` values (a closed list in the schema).
LearningType = Literal[
    "supervised", "unsupervised", "reinforcement-learning", "semi-supervised", "self-supervised"
]


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelDetails(_Card):
    """Who built the model, what it is, how to cite it."""

    description: str | None = None
    developers: str | None = None
    model_type: str | None = None
    task: str | None = None
    learning_type: LearningType | None = None
    architecture_family: str | None = None
    model_architecture: str | None = None
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    paper: str | None = None
    citation: str | None = None
    contact: str | None = None


class IntendedUse(_Card):
    primary_uses: list[str] = Field(default_factory=list)
    primary_users: list[str] = Field(default_factory=list)
    out_of_scope_uses: list[str] = Field(default_factory=list)


class Factors(_Card):
    relevant: list[str] = Field(default_factory=list)
    evaluation: list[str] = Field(default_factory=list)


class MetricsInfo(_Card):
    performance_measures: list[str] = Field(default_factory=list)
    decision_thresholds: str | None = None
    variation_approaches: str | None = None


class DataInfo(_Card):
    """Training or evaluation data: ``datasets`` names datasets recorded with the version."""

    datasets: list[str] = Field(default_factory=list)
    description: str | None = None
    motivation: str | None = None
    preprocessing: str | None = None


class EthicalConsideration(_Card):
    name: str
    mitigation: str | None = None


class FairnessAssessment(_Card):
    group_at_risk: str
    benefits: str | None = None
    harms: str | None = None
    mitigation: str | None = None


class Caveats(_Card):
    technical_limitations: list[str] = Field(default_factory=list)
    performance_tradeoffs: list[str] = Field(default_factory=list)
    recommendations: list[str] = Field(default_factory=list)


class ModelCardSpec(_Card):
    """The user-written part of a model card (the prose the registry cannot know)."""

    license: str | None = None
    tags: list[str] = Field(default_factory=list)
    model_details: ModelDetails = Field(default_factory=ModelDetails)
    intended_use: IntendedUse = Field(default_factory=IntendedUse)
    factors: Factors = Field(default_factory=Factors)
    metrics: MetricsInfo = Field(default_factory=MetricsInfo)
    evaluation_data: DataInfo = Field(default_factory=DataInfo)
    training_data: DataInfo = Field(default_factory=DataInfo)
    ethical_considerations: list[EthicalConsideration] = Field(default_factory=list)
    fairness_assessments: list[FairnessAssessment] = Field(default_factory=list)
    caveats_and_recommendations: Caveats = Field(default_factory=Caveats)

    @classmethod
    def parse(cls, data: Mapping[str, Any], source: str = "model card") -> ModelCardSpec:
        """Validate a parsed card file; any problem is one line naming the key."""
        if not isinstance(data, Mapping):
            raise MalformedDocumentError(f"{source}: a model card must be a mapping")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            raise MalformedDocumentError(f"{source}: {_one_line(e)}") from e

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The card model that the parent of ``loc`` is an instance of (for suggestions)."""
    model: type[BaseModel] | None = ModelCardSpec
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        annotation = info.annotation if info is not None else None
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return model


def _one_line(error: ValidationError) -> str:
    errors = sorted(error.errors(), key=lambda item: item["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    suffix = more if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        model = _model_at(loc)
        known = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
        return f"unknown key {_location(loc)!r}{hint}{suffix}"
    if first["type"] == "missing":
        return f"missing key {_location(loc)!r}{suffix}"
    return f"{_location(loc)}: {first['msg']}{suffix}"


# -- rendering ----------------------------------------------------------------------------


def metric_text(value: Any) -> str:
    """A metric value as text: numbers as JSON writes them (``0.88``, ``3``)."""
    if isinstance(value, str):
        return value
    return canonical_json(value, "metric").decode("utf-8")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split()) or " "


def _bullets(items: list[str]) -> str:
    if not items:
        return NO_INFORMATION
    return "\n".join(f"- {' '.join(item.split())}" for item in items)


def _prose(text: str | None) -> str:
    return text.strip() if text and text.strip() else NO_INFORMATION


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def _datasets_table(datasets: list[DatasetRef]) -> str:
    rows = [[d.name, d.uri, d.digest] for d in datasets]
    return _table(["Dataset", "URI", "Digest"], rows)


def _card(inputs: ProvenanceInputs) -> ModelCardSpec:
    return inputs.card if inputs.card is not None else ModelCardSpec()


def _datasets_by_role(
    inputs: ProvenanceInputs,
) -> tuple[list[DatasetRef], list[DatasetRef], list[DatasetRef]]:
    """(training, evaluation, role not stated) datasets; a card naming a dataset the
    version did not record is refused, since the card would then claim unbound data."""
    card = _card(inputs)
    by_name = {d.name: d for d in inputs.datasets}
    for role, names in (
        ("training_data", card.training_data.datasets),
        ("evaluation_data", card.evaluation_data.datasets),
    ):
        unknown = [n for n in names if n not in by_name]
        if unknown:
            recorded = ", ".join(sorted(by_name)) or "none"
            raise InvalidInputError(
                f"model card {role}.datasets names {unknown[0]!r}, which version "
                f"{inputs.name}/{inputs.version} did not record (recorded: {recorded})"
            )
    training = [by_name[n] for n in sorted(set(card.training_data.datasets))]
    evaluation = [by_name[n] for n in sorted(set(card.evaluation_data.datasets))]
    named = set(card.training_data.datasets) | set(card.evaluation_data.datasets)
    unstated = [d for d in inputs.datasets if d.name not in named]
    return training, evaluation, unstated


def _metric_keys(inputs: ProvenanceInputs) -> list[tuple[MetricKey, Any]]:
    return sorted(
        ((MetricKey.parse(key), value) for key, value in inputs.metrics.items()),
        key=lambda item: item[0],
    )


def _front_matter(inputs: ProvenanceInputs) -> str:
    """Hugging Face model card metadata; keys with nothing to say are left out."""
    card = _card(inputs)
    metrics = _metric_keys(inputs)
    front: dict[str, Any] = {}
    if card.license:
        front["license"] = card.license
    if card.tags:
        front["tags"] = list(dict.fromkeys(card.tags))
    if inputs.datasets:
        front["datasets"] = sorted({d.name for d in inputs.datasets})
    names = sorted({key.name for key, _ in metrics})
    if names:
        front["metrics"] = names
    _, evaluation, _ = _datasets_by_role(inputs)
    overall = [
        {"type": key.name, "value": value}
        for key, value in metrics
        if not key.slice and isinstance(value, int | float) and not isinstance(value, bool)
    ]
    # The Hub's model-index needs a task and a dataset per result. Only when the card
    # names the task and exactly one evaluation dataset can the overall metrics be
    # attributed without guessing.
    task = card.model_details.task
    if task and len(evaluation) == 1 and overall:
        front["model-index"] = [
            {
                "name": inputs.name,
                "results": [
                    {
                        "task": {"type": task},
                        "dataset": {"name": evaluation[0].name, "type": evaluation[0].name},
                        "metrics": overall,
                    }
                ],
            }
        ]
    if not front:
        return ""
    text = yaml.safe_dump(
        front, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10_000
    )
    return f"---\n{text}---\n\n"


def _details(inputs: ProvenanceInputs) -> str:
    card = _card(inputs)
    details = card.model_details
    lines = [
        f"- **Name:** {inputs.name}",
        f"- **Version:** {inputs.version}",
        f"- **Digest:** `{inputs.digest}` (OMS manifest root)",
        f"- **Artifact:** `{inputs.artifact_name}` ({inputs.hash_algorithm} per file)",
        f"- **Registered:** {inputs.created_at}"
        + (f" by {inputs.created_by}" if inputs.created_by else ""),
    ]
    optional = [
        ("Developed by", details.developers),
        ("Model type", details.model_type),
        ("Task", details.task),
        ("Learning type", details.learning_type),
        ("Architecture family", details.architecture_family),
        ("Architecture", details.model_architecture),
        ("Inputs", ", ".join(details.inputs) or None),
        ("Outputs", ", ".join(details.outputs) or None),
        ("License", card.license),
        ("Paper", details.paper),
        ("Citation", details.citation),
        ("Contact", details.contact),
    ]
    lines.extend(f"- **{label}:** {' '.join(value.split())}" for label, value in optional if value)
    if inputs.code_commit:
        dirty = {True: " (uncommitted changes)", False: " (clean checkout)", None: ""}
        where = f"{inputs.code_repo} @ " if inputs.code_repo else ""
        lines.append(f"- **Code:** {where}`{inputs.code_commit}`{dirty[inputs.code_dirty]}")
    if inputs.run_id or inputs.builder_id:
        run = [
            f"run `{inputs.run_id}`" if inputs.run_id else None,
            f"builder {inputs.builder_id}" if inputs.builder_id else None,
            f"from {inputs.started_on}" if inputs.started_on else None,
            f"to {inputs.finished_on}" if inputs.finished_on else None,
        ]
        lines.append("- **Training run:** " + ", ".join(r for r in run if r))
    if inputs.environment is not None:
        env = inputs.environment
        lines.append(
            f"- **Python environment:** {len(env.packages)} distributions, lock `{env.digest}`"
        )
    parts = ["## Model details", ""]
    description = details.description or inputs.description
    if description and description.strip():
        parts += [description.strip(), ""]
    parts += lines
    if inputs.lineage:
        parts += ["", "### Lineage", ""]
        parts += [
            f"- {edge.relation}: `{edge.target}` (`{edge.digest}`"
            + (", registered)" if edge.registered else ", external)")
            for edge in inputs.lineage
        ]
    return "\n".join(parts)


def _intended_use(card: ModelCardSpec) -> str:
    use = card.intended_use
    return "\n".join(
        [
            "## Intended use",
            "",
            "### Primary intended uses",
            "",
            _bullets(use.primary_uses),
            "",
            "### Primary intended users",
            "",
            _bullets(use.primary_users),
            "",
            "### Out-of-scope uses",
            "",
            _bullets(use.out_of_scope_uses),
        ]
    )


def _factors(inputs: ProvenanceInputs) -> str:
    card = _card(inputs)
    subgroups: dict[str, set[str]] = {}
    for key, _ in _metric_keys(inputs):
        for factor, value in key.slice:
            subgroups.setdefault(factor, set()).add(value)
    parts = [
        "## Factors",
        "",
        "### Relevant factors",
        "",
        _bullets(card.factors.relevant),
        "",
        "### Evaluation factors",
        "",
        _bullets(card.factors.evaluation),
    ]
    if subgroups:
        parts += ["", "Subgroups with recorded metrics:", ""]
        parts += [
            f"- {factor}: {', '.join(sorted(values))}"
            for factor, values in sorted(subgroups.items())
        ]
    return "\n".join(parts)


def _metrics(inputs: ProvenanceInputs) -> str:
    card = _card(inputs)
    names = sorted({key.name for key, _ in _metric_keys(inputs)})
    parts = ["## Metrics", "", "### Model performance measures", ""]
    parts.append(_bullets(card.metrics.performance_measures))
    if names:
        parts += ["", "Recorded metrics: " + ", ".join(f"`{n}`" for n in names) + "."]
    parts += [
        "",
        "### Decision thresholds",
        "",
        _prose(card.metrics.decision_thresholds),
        "",
        "### Variation approaches",
        "",
        _prose(card.metrics.variation_approaches),
    ]
    return "\n".join(parts)


def _data_section(title: str, info: DataInfo, datasets: list[DatasetRef], extra: str) -> str:
    parts = [f"## {title}", ""]
    body: list[str] = []
    if datasets:
        body += [_datasets_table(datasets), ""]
    for label, text in (
        ("Description", info.description),
        ("Motivation", info.motivation),
        ("Preprocessing", info.preprocessing),
    ):
        if text and text.strip():
            body += [f"**{label}:** {text.strip()}", ""]
    if extra:
        body += [extra, ""]
    if not body:
        body = [NO_INFORMATION, ""]
    return "\n".join(parts + body).rstrip("\n")


def _quantitative(inputs: ProvenanceInputs) -> str:
    metrics = _metric_keys(inputs)
    parts = ["## Quantitative analyses", ""]
    if not metrics:
        return "\n".join([*parts, NO_INFORMATION])
    overall = [(key, value) for key, value in metrics if not key.slice]
    if overall:
        parts += ["### Overall", ""]
        parts.append(_table(["Metric", "Value"], [[k.name, metric_text(v)] for k, v in overall]))
        parts.append("")
    groups: dict[tuple[str, ...], dict[tuple[str, ...], dict[str, Any]]] = {}
    for key, value in metrics:
        if key.slice:
            rows = groups.setdefault(key.factors, {})
            rows.setdefault(tuple(v for _, v in key.slice), {})[key.name] = value
    for factors, rows in sorted(groups.items()):
        columns = sorted({name for row in rows.values() for name in row})
        parts += [f"### By {', '.join(factors)}", ""]
        table_rows = [
            [*values, *(metric_text(row[c]) if c in row else "—" for c in columns)]
            for values, row in sorted(rows.items())
        ]
        parts.append(_table([*factors, *columns], table_rows))
        parts.append("")
    return "\n".join(parts).rstrip("\n")


def _ethics(card: ModelCardSpec) -> str:
    parts = ["## Ethical considerations", ""]
    if not card.ethical_considerations and not card.fairness_assessments:
        return "\n".join([*parts, NO_INFORMATION])
    for item in card.ethical_considerations:
        mitigation = f" Mitigation: {' '.join(item.mitigation.split())}" if item.mitigation else ""
        parts.append(f"- **{' '.join(item.name.split())}.**{mitigation}")
    if card.fairness_assessments:
        if card.ethical_considerations:
            parts.append("")
        parts += ["### Fairness assessments", ""]
        rows = [
            [a.group_at_risk, a.benefits or "", a.harms or "", a.mitigation or ""]
            for a in card.fairness_assessments
        ]
        parts.append(_table(["Group at risk", "Benefits", "Harms", "Mitigation"], rows))
    return "\n".join(parts)


def _caveats(card: ModelCardSpec) -> str:
    caveats = card.caveats_and_recommendations
    return "\n".join(
        [
            "## Caveats and recommendations",
            "",
            "### Technical limitations",
            "",
            _bullets(caveats.technical_limitations),
            "",
            "### Performance trade-offs",
            "",
            _bullets(caveats.performance_tradeoffs),
            "",
            "### Recommendations",
            "",
            _bullets(caveats.recommendations),
        ]
    )


def render_model_card(inputs: ProvenanceInputs) -> str:
    """The model card as Markdown with Hugging Face front matter; deterministic."""
    card = _card(inputs)
    training, evaluation, unstated = _datasets_by_role(inputs)
    unstated_text = ""
    if unstated:
        unstated_text = (
            "Datasets recorded with this version whose role the card does not state:\n\n"
            + _datasets_table(unstated)
        )
    sections = [
        f"# {inputs.name} version {inputs.version}",
        _details(inputs),
        _intended_use(card),
        _factors(inputs),
        _metrics(inputs),
        _data_section("Evaluation data", card.evaluation_data, evaluation, ""),
        _data_section("Training data", card.training_data, training, unstated_text),
        _quantitative(inputs),
        _ethics(card),
        _caveats(card),
    ]
    return _front_matter(inputs) + "\n\n".join(sections) + "\n"


def card_predicate(inputs: ProvenanceInputs) -> dict[str, Any]:
    """The predicate of an ``https://mlprov.dev/model-card/v1`` statement."""
    return {
        "model": {"name": inputs.name, "version": inputs.version, "digest": inputs.digest},
        "card": _card(inputs).to_json(),
        "metrics": dict(inputs.metrics),
        "mediaType": "text/markdown",
        "markdown": render_model_card(inputs),
    }
