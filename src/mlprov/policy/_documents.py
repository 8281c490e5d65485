"""The policy file format (version 1), validated strictly: unknown keys are refused.

A policy file is YAML, read through :func:`mlprov.documents.load_yaml` (bounded: size,
depth, no aliases, no tags) and then validated by the frozen pydantic models below, each
with ``extra="forbid"`` and ``strict=True`` (no ``"2"`` for ``2``). Every problem is
reported as ``FILE: line N: KEY.PATH: message``; the line is found by composing the same
text with PyYAML once more and mapping each key path to its node's ``start_mark``.

The format is documented with an example of every key in ``docs/policies.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.documents import load_yaml
from mlprov.durations import parse_duration
from mlprov.errors import InvalidInputError, MalformedDocumentError
from mlprov.records import Stage
from mlprov.verification import ROLES

__all__ = [
    "DEPLOYMENT_REQUIREMENT_KINDS",
    "REQUIREMENT_KINDS",
    "ApprovalsRequirement",
    "DatasetsRequirement",
    "DeploymentPolicyDocument",
    "DeploymentRequirement",
    "DeploymentTargets",
    "EvaluationEvidence",
    "EvidenceRequirement",
    "FormatsRequirement",
    "LicensesRequirement",
    "MembersPassRequirement",
    "MetricThreshold",
    "MinTimeRequirement",
    "ModelCardEvidence",
    "NoRegressionRequirement",
    "PemSource",
    "PolicyDocument",
    "PolicyError",
    "PolicyFile",
    "PolicyProblem",
    "ProvenanceRequirement",
    "Requirement",
    "RollbackOptions",
    "SignaturesRequirement",
    "SignerDeclaration",
    "SigstoreIdentity",
    "TargetSelection",
    "TrustDeclaration",
    "WaiverOptions",
    "parse_metric_threshold",
    "parse_policy_file",
]

Role = Literal["model-signer", "builder", "evaluator", "approver", "registry"]
assert set(Role.__args__) == set(ROLES)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PolicyProblem:
    """One problem in a policy set: the file, the line (0 when unknown), the key path."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: line {self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class PolicyError(InvalidInputError):
    """A policy file (or set) that does not load: exit 2, nothing applied.

    The message is the first problem; ``problems`` holds every problem found.
    """

    def __init__(self, problems: tuple[PolicyProblem, ...]) -> None:
        assert problems
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")
        self.problems = problems


# -- value parsers (shared by the validators and by the engine) ---------------------------


def _policy_duration(value: Any) -> Any:
    """A policy duration (``24h``, ``7d``): the one grammar of :mod:`mlprov.durations`,
    raised as ValueError so pydantic reports it with the key's path and line."""
    if not isinstance(value, str):
        return value
    try:
        return parse_duration(value)
    except InvalidInputError as e:
        raise ValueError(e.message) from e


_OPERATORS = (">=", "<=", "==", "!=", ">", "<")
_THRESHOLD = re.compile(
    r"\A\s*(?P<metric>[^\s<>=!@\[]+(?:@[^\s<>!]+|\[[^\]]+\])?)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
    r"(?P<value>[-+]?[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*\Z"
)


@dataclass(frozen=True)
class MetricThreshold:
    """``val/auc >= 0.90``: the canonical metric key (as :mod:`mlprov.provenance` writes
    it, ``auc[segment=retail]`` for a subgroup), an operator and a number."""

    metric: str
    operator: str
    value: float

    def holds(self, actual: float) -> bool:
        return {
            ">=": actual >= self.value,
            "<=": actual <= self.value,
            "==": actual == self.value,
            "!=": actual != self.value,
            ">": actual > self.value,
            "<": actual < self.value,
        }[self.operator]

    def __str__(self) -> str:
        return f"{self.metric} {self.operator} {self.value:g}"


def canonical_metric_key(text: str) -> str:
    """``auc@segment=retail`` or ``auc[segment=retail]`` -> ``auc[segment=retail]``;
    ValueError for a name :class:`mlprov.provenance.MetricKey` refuses."""
    # Imported here: mlprov.provenance costs a third of a second (cyclonedx), and only
    # policies with metric requirements need its metric grammar.
    from mlprov.provenance import MetricKey  # noqa: PLC0415

    name, at, slice_text = text.strip().partition("@")
    try:
        key = MetricKey.parse(f"{name.strip()}[{slice_text}]" if at else name.strip())
    except InvalidInputError as e:
        raise ValueError(str(e)) from e
    return str(key)


def parse_metric_threshold(text: str) -> MetricThreshold:
    match = _THRESHOLD.match(text)
    if match is None:
        raise ValueError(
            f"{text[:80]!r} is not a metric threshold: use METRIC OP NUMBER, e.g. "
            "'val/auc >= 0.90' or 'auc@segment=retail >= 0.85' (OP one of "
            f"{' '.join(_OPERATORS)})"
        )
    return MetricThreshold(
        canonical_metric_key(match["metric"]),
        match["op"],
        float(match["value"].replace("_", "")),
    )


def _anchored_regex(pattern: str) -> str:
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        raise ValueError(
            f"the regular expression {pattern[:80]!r} must be anchored at both ends (^...$)"
        )
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"{pattern[:80]!r} is not a valid regular expression: {e}") from e
    return pattern


# -- the document models ------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # pydantic-core's regex: $ is the end


def _exactly_one(model: BaseModel, names: tuple[str, ...], what: str) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        raise ValueError(
            f"{what} needs exactly one of {', '.join(names)}"
            + (f"; it has {', '.join(given)}" if given else "")
        )


class PemSource(_Strict):
    """PEM text inline (``pem``) or a file relative to the policy folder (``file``)."""

    file: str | None = None
    pem: str | None = None

    @model_validator(mode="after")
    def _one(self) -> PemSource:
        _exactly_one(self, ("file", "pem"), "a key or certificate")
        return self


class SigstoreIdentity(_Strict):
    """An OIDC issuer and a certificate identity (SAN), each exact or a regular
    expression anchored at both ends."""

    issuer: str | None = None
    issuer_regex: str | None = None
    subject: str | None = None
    subject_regex: str | None = None

    @field_validator("issuer_regex", "subject_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return None if value is None else _anchored_regex(value)

    @model_validator(mode="after")
    def _one_each(self) -> SigstoreIdentity:
        _exactly_one(self, ("issuer", "issuer_regex"), "a Sigstore identity")
        _exactly_one(self, ("subject", "subject_regex"), "a Sigstore identity")
        return self


class SignerDeclaration(_Strict):
    """A trusted signer: a name, the roles it is trusted for, and one kind of trust."""

    name: str = Field(min_length=1, max_length=128, pattern=_NAME_PATTERN)
    roles: list[Role] = Field(min_length=1)
    keys: list[PemSource] | None = Field(default=None, min_length=1)
    certificate_roots: list[PemSource] | None = Field(default=None, min_length=1)
    sigstore: SigstoreIdentity | None = None
    builder_ids: list[str] = Field(default_factory=list)
    description: str = ""

    @model_validator(mode="after")
    def _one_trust(self) -> SignerDeclaration:
        _exactly_one(self, ("keys", "certificate_roots", "sigstore"), "a signer")
        if self.builder_ids and "builder" not in self.roles:
            raise ValueError("builder_ids are only for a signer with the builder role")
        if "builder" in self.roles and not self.builder_ids:
            raise ValueError("a builder needs builder_ids: the SLSA builder ids it may claim")
        return self


class TrustDeclaration(_Strict):
    signers: list[SignerDeclaration] = Field(default_factory=list)


class TargetSelection(_Strict):
    """Aliases (names or glob patterns) and stages a policy protects."""

    aliases: list[str] = Field(default_factory=list)
    stages: list[str] = Field(default_factory=list)

    @field_validator("stages")
    @classmethod
    def _stages(cls, values: list[str]) -> list[str]:
        try:
            return [Stage.parse(v).value for v in values]
        except InvalidInputError as e:
            raise ValueError(str(e)) from e

    @model_validator(mode="after")
    def _some(self) -> TargetSelection:
        if not self.aliases and not self.stages:
            raise ValueError("targets needs at least one alias or stage")
        return self


class SignaturesRequirement(_Strict):
    count: int = Field(default=1, ge=1)
    signers: list[str] | None = Field(default=None, min_length=1)


class ProvenanceRequirement(_Strict):
    builders: list[str] | None = Field(default=None, min_length=1)
    build_types: list[str] | None = Field(default=None, min_length=1)


class ModelCardEvidence(_Strict):
    sections: list[str] = Field(default_factory=list)


class EvaluationEvidence(_Strict):
    evaluators: list[str] | None = Field(default=None, min_length=1)
    predicate_type: str | None = None


class EvidenceRequirement(_Strict):
    ml_bom: bool = False
    model_card: ModelCardEvidence | None = None
    evaluation: EvaluationEvidence | None = None

    @model_validator(mode="after")
    def _some(self) -> EvidenceRequirement:
        if not self.ml_bom and self.model_card is None and self.evaluation is None:
            raise ValueError("evidence needs at least one of ml_bom, model_card, evaluation")
        return self


class NoRegressionRequirement(_Strict):
    metric: str
    tolerance: float = Field(default=0.0, ge=0)
    higher_is_better: bool = True

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return canonical_metric_key(value)


class DatasetsRequirement(_Strict):
    """Every dataset in the signed evidence must match a URI glob or a name."""

    uris: list[str] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> DatasetsRequirement:
        if not self.uris and not self.names:
            raise ValueError("datasets needs uris or names to allow")
        return self


class LicensesRequirement(_Strict):
    allow: list[str] = Field(min_length=1)


class ApprovalsRequirement(_Strict):
    count: int = Field(default=1, ge=1)
    role: Role = "approver"


class MinTimeRequirement(_Strict):
    alias: str | None = None
    stage: str | None = None
    duration: timedelta

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _policy_duration(value)

    @field_validator("stage")
    @classmethod
    def _stage(cls, value: str | None) -> str | None:
        try:
            return None if value is None else Stage.parse(value).value
        except InvalidInputError as e:
            raise ValueError(str(e)) from e

    @model_validator(mode="after")
    def _one(self) -> MinTimeRequirement:
        _exactly_one(self, ("alias", "stage"), "min_time")
        return self


class FormatsRequirement(_Strict):
    allow: list[str] | None = None
    forbid: list[str] | None = None

    @model_validator(mode="after")
    def _some(self) -> FormatsRequirement:
        if self.allow is None and self.forbid is None:
            raise ValueError("formats needs allow or forbid")
        return self


#: The requirement kinds, in the order docs/policies.md describes them.
REQUIREMENT_KINDS = (
    "signatures",
    "provenance",
    "evidence",
    "metric",
    "no_regression",
    "verified_lineage",
    "datasets",
    "licenses",
    "approvals",
    "min_time",
    "formats",
    "cel",
)


class Requirement(_Strict):
    """One requirement: exactly one kind key, plus an optional id and description."""

    id: str | None = Field(default=None, min_length=1, max_length=128, pattern=_NAME_PATTERN)
    description: str = ""
    signatures: SignaturesRequirement | None = None
    provenance: ProvenanceRequirement | None = None
    evidence: EvidenceRequirement | None = None
    metric: str | None = None
    no_regression: NoRegressionRequirement | None = None
    verified_lineage: Literal[True] | None = None
    datasets: DatasetsRequirement | None = None
    licenses: LicensesRequirement | None = None
    approvals: ApprovalsRequirement | None = None
    min_time: MinTimeRequirement | None = None
    formats: FormatsRequirement | None = None
    cel: str | None = Field(default=None, min_length=1)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str | None) -> str | None:
        if value is not None:
            parse_metric_threshold(value)
        return value

    @field_validator("cel")
    @classmethod
    def _cel(cls, value: str | None) -> str | None:
        if value is not None:
            from mlprov.policy._cel import compile_expression  # noqa: PLC0415

            compile_expression(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Requirement:
        _exactly_one(self, REQUIREMENT_KINDS, "a requirement")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in REQUIREMENT_KINDS if getattr(self, k) is not None)


class WaiverOptions(_Strict):
    """Which requirements may be waived, by how many holders of which role, how long."""

    requirements: list[str] = Field(min_length=1)
    role: Role = "approver"
    approvers: int = Field(default=2, ge=2)
    max_duration: timedelta

    @field_validator("max_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _policy_duration(value)


class RollbackOptions(_Strict):
    """Moving back to a version admitted to the target before: these requirements
    (ids; by default every no_regression, approvals and min_time one) are not enforced."""

    previously_admitted: Literal[True] = True
    skip: list[str] | None = None


class PolicyDocument(_Strict):
    name: str = Field(min_length=1, max_length=128, pattern=_NAME_PATTERN)
    description: str = ""
    models: list[str] = Field(min_length=1)
    targets: TargetSelection
    require: list[Requirement] = Field(default_factory=list)
    require_verified: bool = True
    allow_delete: bool = False
    waivers: WaiverOptions | None = None
    rollback: RollbackOptions | None = None


class MembersPassRequirement(_Strict):
    """Every member must pass its own model's policy for ``target`` (an alias; by default
    the alias the deployment moves), as the gate would judge moving it there."""

    target: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("target")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None:
            from mlprov.refs import validate_alias  # noqa: PLC0415

            try:
                validate_alias(value)
            except InvalidInputError as e:
                raise ValueError(str(e)) from e
        return value


DEPLOYMENT_REQUIREMENT_KINDS = ("members_pass", "same_datasets", "cel")


class DeploymentRequirement(_Strict):
    """One requirement of a deployment policy: exactly one kind key."""

    id: str | None = Field(default=None, min_length=1, max_length=128, pattern=_NAME_PATTERN)
    description: str = ""
    members_pass: MembersPassRequirement | None = None
    same_datasets: Literal[True] | None = None
    cel: str | None = Field(default=None, min_length=1)

    @field_validator("members_pass", mode="before")
    @classmethod
    def _members_pass(cls, value: Any) -> Any:
        return {} if value is True else value

    @field_validator("cel")
    @classmethod
    def _cel(cls, value: str | None) -> str | None:
        if value is not None:
            from mlprov.policy._cel import compile_expression  # noqa: PLC0415

            compile_expression(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> DeploymentRequirement:
        _exactly_one(self, DEPLOYMENT_REQUIREMENT_KINDS, "a deployment requirement")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in DEPLOYMENT_REQUIREMENT_KINDS if getattr(self, k) is not None)


class DeploymentTargets(_Strict):
    """The deployment aliases a deployment policy protects (names or glob patterns)."""

    aliases: list[str] = Field(min_length=1)


class DeploymentPolicyDocument(_Strict):
    """A policy for deployment alias moves (``deployments:`` of a policy file)."""

    name: str = Field(min_length=1, max_length=128, pattern=_NAME_PATTERN)
    description: str = ""
    deployments: list[str] = Field(min_length=1)
    targets: DeploymentTargets
    require: list[DeploymentRequirement] = Field(default_factory=list)
    require_verified: bool = True
    allow_delete: bool = False


class PolicyFile(_Strict):
    version: Literal[1]
    trust: TrustDeclaration | None = None
    policies: list[PolicyDocument] = Field(default_factory=list)
    deployments: list[DeploymentPolicyDocument] = Field(default_factory=list)


# -- loading with line numbers ------------------------------------------------------------

KeyPath = tuple[str | int, ...]


def _key_lines(text: str) -> dict[KeyPath, int]:
    """Each key path of the document -> the 1-based line of its key (or item).

    Only called on text that :func:`load_yaml` accepted, so it is bounded already.
    """
    import yaml  # noqa: PLC0415 - lazy like mlprov.documents

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[KeyPath, int] = {}

    def walk(node: Any, path: KeyPath) -> None:
        child: KeyPath
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                lines[child] = item.start_mark.line + 1
                walk(item, child)

    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, ())
    return lines


def key_path_text(path: KeyPath) -> str:
    """``("policies", 0, "require", 2, "metrc")`` -> ``policies[0].require[2].metrc``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """The line of ``path``, or of its nearest ancestor the document has."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 0


def _problem_message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key {str(error['loc'][-1])!r}"
    if kind == "missing":
        return f"missing required key {str(error['loc'][-1])!r}"
    message = str(error["msg"])
    # pydantic prefixes what a validator raised with "Value error, ".
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _document_problem(name: str, message: str) -> PolicyProblem:
    """A problem :func:`load_yaml` found, without repeating the file name and line."""
    found = re.match(rf"\A{re.escape(name)}(?:: line (\d+): | )(.*)\Z", message)
    if found is None:
        return PolicyProblem(name, 0, "", message)
    text = found[2]
    line = int(found[1]) if found[1] else 0
    at = re.search(r" at line (\d+)", text)
    if at is not None and not line:
        line = int(at[1])
        text = text.replace(at[0], "", 1)
    return PolicyProblem(name, line, "", text)


@dataclass(frozen=True)
class ParsedFile:
    """A policy file that validated, and where each of its keys is."""

    name: str
    document: PolicyFile
    lines: dict[KeyPath, int]

    def problem(self, path: KeyPath, message: str) -> PolicyProblem:
        return PolicyProblem(self.name, line_of(self.lines, path), key_path_text(path), message)


def parse_policy_file(
    name: str, data: bytes, limits: Limits = DEFAULT_LIMITS
) -> ParsedFile | tuple[PolicyProblem, ...]:
    """One policy file: parsed, or every problem pydantic found in it."""
    try:
        value = load_yaml(data, name, limits)
    except MalformedDocumentError as e:
        return (_document_problem(name, e.message),)
    if not isinstance(value, dict):
        return (PolicyProblem(name, 1, "", "a policy file must be a mapping with 'version: 1'"),)
    lines = _key_lines(data.decode("utf-8"))
    try:
        document = PolicyFile.model_validate(value)
    except ValidationError as e:
        problems = []
        for error in e.errors(include_url=False):
            path: KeyPath = tuple(error["loc"])
            # A model-level validator's loc is its model; an unknown key's is the key.
            problems.append(
                PolicyProblem(
                    name, line_of(lines, path), key_path_text(path), _problem_message(error)
                )
            )
        return tuple(problems)
    return ParsedFile(name, document, lines)
