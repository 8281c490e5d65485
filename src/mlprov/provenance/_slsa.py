"""SLSA Provenance v1 for a training run, as an in-toto Statement v1.

The build type is mlprov's own (SLSA defines none for ML training):
:data:`TRAINING_BUILD_TYPE`; its parameters are documented in ``docs/provenance.md``.
Following SLSA v1 ("parameters hold values; what they refer to goes in
``resolvedDependencies`` with digests"), the training config and the names/URIs the
caller chose are ``externalParameters``; the code commit, every dataset, every
lineage model and the Python environment lock are ``resolvedDependencies`` with
digests. A verifier must check the (signer, ``builder.id``) pair, not the builder id
alone (SLSA verifying-artifacts, step "check builder identity").

Pure and deterministic: the same inputs give byte-identical statements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from mlprov.errors import InvalidInputError
from mlprov.provenance._capture import flatten_params
from mlprov.provenance._statement import (
    ResourceDescriptor,
    Statement,
    _Model,
    digest_set,
)

if TYPE_CHECKING:
    from mlprov.provenance import ProvenanceInputs

__all__ = [
    "SLSA_PREDICATE_TYPE",
    "TRAINING_BUILD_TYPE",
    "BuildDefinition",
    "BuildMetadata",
    "Builder",
    "Provenance",
    "RunDetails",
    "build_provenance",
    "code_uri",
    "model_subject",
    "slsa_statement",
]

SLSA_PREDICATE_TYPE = "https://slsa.dev/provenance/v1"

#: mlprov's build type for a training run; the schema of its parameters is in
#: docs/provenance.md ("Build type https://mlprov.dev/training/v1").
TRAINING_BUILD_TYPE = "https://mlprov.dev/training/v1"


class BuildDefinition(_Model):
    build_type: str = Field(alias="buildType")
    external_parameters: dict[str, Any] = Field(alias="externalParameters")
    internal_parameters: dict[str, Any] | None = Field(default=None, alias="internalParameters")
    resolved_dependencies: tuple[ResourceDescriptor, ...] | None = Field(
        default=None, alias="resolvedDependencies"
    )


class Builder(_Model):
    id: str
    version: dict[str, str] | None = None


class BuildMetadata(_Model):
    invocation_id: str | None = Field(default=None, alias="invocationId")
    started_on: str | None = Field(default=None, alias="startedOn")
    finished_on: str | None = Field(default=None, alias="finishedOn")


class RunDetails(_Model):
    builder: Builder
    metadata: BuildMetadata | None = None


class Provenance(_Model):
    """The SLSA Provenance v1 predicate."""

    build_definition: BuildDefinition = Field(alias="buildDefinition")
    run_details: RunDetails = Field(alias="runDetails")


def model_subject(inputs: ProvenanceInputs) -> ResourceDescriptor:
    """The one subject of every mlprov statement about a version: the model's name and
    its OMS subject digest (the manifest root, ``{"sha256": hex}``)."""
    return ResourceDescriptor(name=inputs.name, digest=digest_set(inputs.digest))


def code_uri(repo: str, commit: str) -> str:
    """SLSA's git dependency URI: ``git+https://host/org/repo@<commit>``; a local path
    becomes ``git+file:///path@<commit>``."""
    base = repo if "://" in repo else "file://" + repo
    return f"git+{base}@{commit}"


def _external(inputs: ProvenanceInputs) -> dict[str, Any]:
    external: dict[str, Any] = {"name": inputs.name, "params": dict(inputs.params)}
    if inputs.datasets:
        external["datasets"] = [{"name": d.name, "uri": d.uri} for d in inputs.datasets]
    if inputs.lineage:
        external["lineage"] = [{"relation": e.relation, "target": e.target} for e in inputs.lineage]
    if inputs.code_commit:
        source: dict[str, Any] = {"commit": inputs.code_commit}
        if inputs.code_repo:
            source["repository"] = inputs.code_repo
        external["source"] = source
    return external


def _internal(inputs: ProvenanceInputs) -> dict[str, Any]:
    return {
        "version": inputs.version,
        "artifactName": inputs.artifact_name,
        "hashAlgorithm": inputs.hash_algorithm,
        "flatParams": flatten_params(inputs.params),
    }


def _dependencies(inputs: ProvenanceInputs) -> tuple[ResourceDescriptor, ...]:
    deps: list[ResourceDescriptor] = []
    if inputs.code_commit:
        annotations: dict[str, Any] = {"kind": "source"}
        if inputs.code_dirty is not None:
            annotations["dirty"] = inputs.code_dirty
        deps.append(
            ResourceDescriptor(
                name="source",
                uri=code_uri(inputs.code_repo, inputs.code_commit) if inputs.code_repo else None,
                digest={"gitCommit": inputs.code_commit},
                annotations=annotations,
            )
        )
    deps.extend(
        ResourceDescriptor(
            name=d.name,
            uri=d.uri,
            digest=digest_set(d.digest),
            annotations={"kind": "dataset", "digestOf": d.digest_of},
        )
        for d in inputs.datasets
    )
    for edge in inputs.lineage:
        uri = f"models:/{edge.target}" if edge.registered else edge.target
        deps.append(
            ResourceDescriptor(
                name=edge.target,
                uri=uri,
                digest=digest_set(edge.digest),
                annotations={"kind": "model", "relation": edge.relation},
            )
        )
    if inputs.environment is not None:
        deps.append(
            ResourceDescriptor(
                name="python-environment",
                digest=digest_set(inputs.environment.digest),
                annotations={
                    "kind": "environment-lock",
                    "packages": len(inputs.environment.packages),
                },
            )
        )
    return tuple(deps)


def build_provenance(inputs: ProvenanceInputs) -> Provenance:
    """The SLSA Provenance v1 predicate for a registered version's training run."""
    if not inputs.builder_id:
        raise InvalidInputError(
            f"{inputs.name}/{inputs.version}: SLSA provenance needs a builder id "
            "(runDetails.builder.id is required): give the training platform's id"
        )
    metadata = BuildMetadata(
        invocation_id=inputs.run_id,
        started_on=inputs.started_on,
        finished_on=inputs.finished_on,
    )
    has_metadata = any((inputs.run_id, inputs.started_on, inputs.finished_on))
    return Provenance(
        build_definition=BuildDefinition(
            build_type=TRAINING_BUILD_TYPE,
            external_parameters=_external(inputs),
            internal_parameters=_internal(inputs),
            resolved_dependencies=_dependencies(inputs) or None,
        ),
        run_details=RunDetails(
            builder=Builder(id=inputs.builder_id),
            metadata=metadata if has_metadata else None,
        ),
    )


def slsa_statement(inputs: ProvenanceInputs) -> Statement:
    return Statement(
        subject=(model_subject(inputs),),
        predicate_type=SLSA_PREDICATE_TYPE,
        predicate=build_provenance(inputs).to_json(),
    )
