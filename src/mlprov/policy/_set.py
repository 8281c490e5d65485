"""A policy set: every policy file of a folder, loaded, cross-checked and digested.

:func:`load_policy_set` takes ``{file name: bytes}``: every regular file of the policy
folder, named by its POSIX path relative to the folder (the registry or the CLI reads the
folder; nothing here opens a file). The *policy documents* are the names at the top level
ending in ``.yaml`` or ``.yml``; other files are read only when a document names them (a
public key, a certificate root); the rest (``README.md``) is ignored.

:attr:`PolicySet.digest` is ``sha256:`` + the SHA-256 of the RFC 8785 (JCS) encoding of
``{"files": {NAME: "sha256:HEX", ...}, "format": "mlprov-policy-set/1"}`` over the
documents and the files they reference, HEX being the SHA-256 of each file's exact bytes.
JCS sorts the names, so the digest does not depend on the order the files were given in;
ignored files are not part of it. :attr:`PolicySet.files` keeps exactly those bytes, so
whoever stores the set can recompute the digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from mlprov.canonical import rfc8785_json
from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.policy._cel import CompiledExpression, compile_expression
from mlprov.policy._decision import Target
from mlprov.policy._documents import (
    DEPLOYMENT_REQUIREMENT_KINDS,
    REQUIREMENT_KINDS,
    DeploymentPolicyDocument,
    DeploymentRequirement,
    KeyPath,
    MetricThreshold,
    ParsedFile,
    PolicyDocument,
    PolicyError,
    PolicyProblem,
    Requirement,
    parse_metric_threshold,
    parse_policy_file,
)
from mlprov.policy._trust import (
    SignerKind,
    build_trusted_signers,
    normalise_relative_path,
    referenced_files,
)
from mlprov.verification import TrustedSigner, TrustSet

__all__ = [
    "CompiledDeploymentPolicy",
    "CompiledDeploymentRequirement",
    "CompiledPolicy",
    "CompiledRequirement",
    "PolicySet",
    "lint_policy_set",
    "load_policy_set",
]

_DIGEST_FORMAT = "mlprov-policy-set/1"
#: Kinds that judge the move rather than the version: not enforced by default on a
#: rollback to a version admitted before, when the policy allows that (RollbackOptions).
ROLLBACK_SKIPPED_KINDS = frozenset({"no_regression", "approvals", "min_time"})


@dataclass(frozen=True)
class CompiledRequirement:
    id: str
    kind: str
    spec: Requirement
    threshold: MetricThreshold | None = None
    expression: CompiledExpression | None = None


@dataclass(frozen=True)
class CompiledPolicy:
    file: str
    document: PolicyDocument
    requirements: tuple[CompiledRequirement, ...]

    @property
    def name(self) -> str:
        return self.document.name

    def selects(self, model: str, target: Target) -> bool:
        if not any(fnmatchcase(model, pattern) for pattern in self.document.models):
            return False
        if target.kind == "alias":
            return any(fnmatchcase(target.name, p) for p in self.document.targets.aliases)
        return target.name.lower() in (s.lower() for s in self.document.targets.stages)

    def rollback_skips(self) -> frozenset[str]:
        options = self.document.rollback
        if options is None:
            return frozenset()
        if options.skip is not None:
            return frozenset(options.skip)
        return frozenset(r.id for r in self.requirements if r.kind in ROLLBACK_SKIPPED_KINDS)


@dataclass(frozen=True)
class CompiledDeploymentRequirement:
    id: str
    kind: str
    members_target: str | None = None  # members_pass: the alias members are judged for
    expression: CompiledExpression | None = None


@dataclass(frozen=True)
class CompiledDeploymentPolicy:
    """A policy of a file's ``deployments:`` list: it selects deployment alias moves."""

    file: str
    document: DeploymentPolicyDocument
    requirements: tuple[CompiledDeploymentRequirement, ...]

    @property
    def name(self) -> str:
        return self.document.name

    def selects(self, deployment: str, target: Target) -> bool:
        return (
            target.kind == "alias"
            and any(fnmatchcase(deployment, p) for p in self.document.deployments)
            and any(fnmatchcase(target.name, p) for p in self.document.targets.aliases)
        )


@dataclass(frozen=True)
class PolicySet:
    """The loaded policies and trust of one policy folder."""

    digest: str
    files: Mapping[str, bytes] = field(repr=False)
    policies: tuple[CompiledPolicy, ...]
    trust: TrustSet
    signers: Mapping[str, SignerKind] = field(repr=False)
    deployment_policies: tuple[CompiledDeploymentPolicy, ...] = ()

    def selecting(self, model: str, target: Target) -> tuple[CompiledPolicy, ...]:
        return tuple(p for p in self.policies if p.selects(model, target))

    def selecting_deployment(
        self, deployment: str, target: Target
    ) -> tuple[CompiledDeploymentPolicy, ...]:
        return tuple(p for p in self.deployment_policies if p.selects(deployment, target))

    def holds_role(self, signer_name: str, role: str) -> bool:
        kind = self.signers.get(signer_name)
        return kind is not None and role in kind.roles

    def builder_ids(self, signer_name: str) -> tuple[str, ...]:
        return tuple(
            builder_id
            for signer in self.trust.signers
            if signer.name == signer_name
            for builder_id in signer.builder_ids
        )


def _digest(files: Mapping[str, bytes]) -> str:
    document = {
        "format": _DIGEST_FORMAT,
        "files": {
            name: "sha256:" + hashlib.sha256(data).hexdigest() for name, data in files.items()
        },
    }
    return "sha256:" + hashlib.sha256(rfc8785_json(document)).hexdigest()


def _is_document(name: str) -> bool:
    return "/" not in name and name.endswith((".yaml", ".yml"))


def _requirement_ids(requirements: Sequence[Requirement | DeploymentRequirement]) -> list[str]:
    """Given ids, else the kind (``kind-N`` when the policy has several of that kind)."""
    counts: dict[str, int] = {}
    for requirement in requirements:
        if requirement.id is None:
            counts[requirement.kind] = counts.get(requirement.kind, 0) + 1
    seen: dict[str, int] = {}
    ids = []
    for requirement in requirements:
        if requirement.id is not None:
            ids.append(requirement.id)
            continue
        kind = requirement.kind
        seen[kind] = seen.get(kind, 0) + 1
        ids.append(kind if counts[kind] == 1 else f"{kind}-{seen[kind]}")
    return ids


class _Loader:
    """Collects every problem of a set, so lint can report them all at once."""

    def __init__(self, files: Mapping[str, bytes], limits: Limits) -> None:
        self.files = files
        self.limits = limits
        self.problems: list[PolicyProblem] = []
        self.parsed: list[ParsedFile] = []
        self.used: dict[str, bytes] = {}

    def problem(self, parsed: ParsedFile, path: KeyPath, message: str) -> None:
        self.problems.append(parsed.problem(path, message))

    def parse(self) -> None:
        names = sorted(n for n in self.files if _is_document(n))
        if not names:
            self.problems.append(
                PolicyProblem("(policy folder)", 0, "", "no policy file (*.yaml, *.yml) in it")
            )
        for name in names:
            data = self.files[name]
            self.used[name] = data
            result = parse_policy_file(name, data, self.limits)
            if isinstance(result, ParsedFile):
                self.parsed.append(result)
            else:
                self.problems.extend(result)

    def trust(self) -> tuple[TrustSet, dict[str, SignerKind]]:
        signers: list[TrustedSigner] = []
        kinds: dict[str, SignerKind] = {}
        declared_in: dict[str, str] = {}
        for parsed in self.parsed:
            if parsed.document.trust is None:
                continue
            for index, declaration in enumerate(parsed.document.trust.signers):
                path: KeyPath = ("trust", "signers", index)
                if declaration.name in declared_in:
                    self.problem(
                        parsed,
                        (*path, "name"),
                        f"the signer {declaration.name!r} is declared twice "
                        f"(also in {declared_in[declaration.name]}); give one declaration "
                        "with several keys instead",
                    )
                    continue
                declared_in[declaration.name] = parsed.name
                for name in referenced_files(declaration):
                    if name in self.files:
                        self.used[name] = self.files[name]
                try:
                    signers.extend(build_trusted_signers(declaration, self.files))
                except ValueError as e:
                    self.problem(parsed, path, str(e))
                    continue
                exact = declaration.keys is not None or (
                    declaration.sigstore is not None
                    and declaration.sigstore.subject_regex is None
                    and declaration.sigstore.issuer_regex is None
                )
                kinds[declaration.name] = SignerKind(
                    declaration.name, frozenset(declaration.roles), exact
                )
        return TrustSet(tuple(signers)), kinds

    def _check_signer_names(
        self,
        parsed: ParsedFile,
        path: KeyPath,
        names: list[str] | None,
        role: str,
        kinds: Mapping[str, SignerKind],
    ) -> None:
        for index, name in enumerate(names or ()):
            kind = kinds.get(name)
            if kind is None:
                self.problem(parsed, (*path, index), f"no trusted signer is called {name!r}")
            elif role not in kind.roles:
                self.problem(
                    parsed, (*path, index), f"the signer {name!r} does not hold the {role} role"
                )

    def policies(self, kinds: Mapping[str, SignerKind]) -> tuple[CompiledPolicy, ...]:
        compiled: list[CompiledPolicy] = []
        where: dict[str, str] = {}
        for parsed in self.parsed:
            for index, document in enumerate(parsed.document.policies):
                path: KeyPath = ("policies", index)
                if document.name in where:
                    self.problem(
                        parsed,
                        (*path, "name"),
                        f"a policy called {document.name!r} is also in {where[document.name]}",
                    )
                    continue
                where[document.name] = parsed.name
                compiled.append(self._policy(parsed, path, document, kinds))
        return tuple(compiled)

    def _policy(
        self,
        parsed: ParsedFile,
        path: KeyPath,
        document: PolicyDocument,
        kinds: Mapping[str, SignerKind],
    ) -> CompiledPolicy:
        ids = _requirement_ids(document.require)
        requirements: list[CompiledRequirement] = []
        for index, (requirement_id, requirement) in enumerate(
            zip(ids, document.require, strict=True)
        ):
            at: KeyPath = (*path, "require", index)
            if ids.count(requirement_id) > 1:
                self.problem(parsed, at, f"two requirements have the id {requirement_id!r}")
            kind = requirement.kind
            assert kind in REQUIREMENT_KINDS
            threshold = None
            expression = None
            try:
                if requirement.metric is not None:
                    threshold = parse_metric_threshold(requirement.metric)
                if requirement.cel is not None:
                    expression = compile_expression(requirement.cel)
            except ValueError as e:  # already refused by the validators; kept as a backstop
                self.problem(parsed, (*at, kind), str(e))
            if requirement.signatures is not None:
                self._check_signer_names(
                    parsed,
                    (*at, "signatures", "signers"),
                    requirement.signatures.signers,
                    "model-signer",
                    kinds,
                )
            if requirement.provenance is not None:
                self._check_signer_names(
                    parsed,
                    (*at, "provenance", "builders"),
                    requirement.provenance.builders,
                    "builder",
                    kinds,
                )
            evaluation = requirement.evidence.evaluation if requirement.evidence else None
            if evaluation is not None:
                self._check_signer_names(
                    parsed,
                    (*at, "evidence", "evaluation", "evaluators"),
                    evaluation.evaluators,
                    "evaluator",
                    kinds,
                )
            requirements.append(
                CompiledRequirement(requirement_id, kind, requirement, threshold, expression)
            )
        known = set(ids)
        for option in ("waivers", "rollback"):
            value = getattr(document, option)
            listed = (
                (value.requirements if option == "waivers" else value.skip)
                if value is not None
                else None
            )
            key = "requirements" if option == "waivers" else "skip"
            for index, requirement_id in enumerate(listed or ()):
                if requirement_id not in known:
                    self.problem(
                        parsed,
                        (*path, option, key, index),
                        f"the policy has no requirement with the id {requirement_id!r} "
                        f"(it has: {', '.join(ids) or 'none'})",
                    )
        return CompiledPolicy(parsed.name, document, tuple(requirements))

    def deployment_policies(self, taken: set[str]) -> tuple[CompiledDeploymentPolicy, ...]:
        """The ``deployments:`` policies; their names share one namespace with the
        model policies (``taken``), so a decision's result ids never collide."""
        compiled: list[CompiledDeploymentPolicy] = []
        for parsed in self.parsed:
            for index, document in enumerate(parsed.document.deployments):
                path: KeyPath = ("deployments", index)
                if document.name in taken:
                    self.problem(
                        parsed, (*path, "name"), f"a policy called {document.name!r} exists already"
                    )
                    continue
                taken.add(document.name)
                ids = _requirement_ids(document.require)
                requirements = []
                for number, (requirement_id, requirement) in enumerate(
                    zip(ids, document.require, strict=True)
                ):
                    at: KeyPath = (*path, "require", number)
                    if ids.count(requirement_id) > 1:
                        self.problem(parsed, at, f"two requirements have the id {requirement_id!r}")
                    kind = requirement.kind
                    assert kind in DEPLOYMENT_REQUIREMENT_KINDS
                    expression = None
                    if requirement.cel is not None:
                        try:
                            expression = compile_expression(requirement.cel)
                        except ValueError as e:  # refused by the validator already
                            self.problem(parsed, (*at, kind), str(e))
                    members = requirement.members_pass
                    requirements.append(
                        CompiledDeploymentRequirement(
                            requirement_id,
                            kind,
                            members.target if members is not None else None,
                            expression,
                        )
                    )
                compiled.append(
                    CompiledDeploymentPolicy(parsed.name, document, tuple(requirements))
                )
        return tuple(compiled)


def _load(
    files: Mapping[str, bytes], limits: Limits
) -> tuple[PolicySet | None, list[PolicyProblem]]:
    loader = _Loader(files, limits)
    for name in files:
        if _is_document(name):
            continue
        try:
            normalise_relative_path(name)
        except ValueError as e:
            loader.problems.append(PolicyProblem(name, 0, "", str(e)))
    for name, data in files.items():
        if len(data) > limits.max_document_bytes:
            loader.problems.append(
                PolicyProblem(
                    name,
                    0,
                    "",
                    f"{len(data)} bytes, more than the limit of {limits.max_document_bytes}",
                )
            )
    if loader.problems:
        return None, loader.problems
    loader.parse()
    trust, kinds = loader.trust()
    policies = loader.policies(kinds)
    deployment_policies = loader.deployment_policies({p.name for p in policies})
    if loader.problems:
        return None, loader.problems
    used = dict(sorted(loader.used.items()))
    return PolicySet(_digest(used), used, policies, trust, kinds, deployment_policies), []


def lint_policy_set(
    files: Mapping[str, bytes], limits: Limits = DEFAULT_LIMITS
) -> tuple[PolicyProblem, ...]:
    """Every problem of a policy folder (empty when it loads), in file and line order."""
    _, problems = _load(files, limits)
    return tuple(sorted(problems, key=lambda p: (p.file, p.line, p.key)))


def load_policy_set(files: Mapping[str, bytes], limits: Limits = DEFAULT_LIMITS) -> PolicySet:
    """Load a policy folder's files; :class:`PolicyError` (exit 2) naming the file, line
    and key of the first problem (all of them in ``problems``) when it does not load."""
    policy_set, problems = _load(files, limits)
    if policy_set is None:
        raise PolicyError(tuple(sorted(problems, key=lambda p: (p.file, p.line, p.key))))
    return policy_set
