"""A CycloneDX 1.6 ML-BOM for one registered version.

Shape (see ``docs/provenance.md`` for every field):

* ``metadata.component`` is the model: type ``machine-learning-model``, its manifest
  root digest as a hash, mlprov facts as ``mlprov:*`` properties, the code repository
  as a ``vcs`` external reference, lineage models in ``pedigree.ancestors``, and a
  ``modelCard`` (parameters, datasets by reference, every metric with its slice,
  considerations from the user's card), one ``mlprov:format`` property per distinct
  artefact format found by content, and each file as a ``file`` sub-component with its
  format, the globals its pickles import and what the scan noted;
* ``components``: each dataset as a ``data`` component (with a ``data`` entry naming
  its URI) and each installed Python distribution as a ``library`` with a
  ``pkg:pypi`` purl, sorted by ``bom-ref``;
* ``dependencies``: the model depends on every dataset and library.

``cyclonedx-python-lib`` builds what it models (BOM, components, hashes, pedigree,
dependencies, metadata); ``modelCard`` and ``data``, which it does not model (upstream
issues #912, #913), are added to its JSON afterwards. The serial number is a UUIDv5 of
the model's name, version and digest, and the timestamp is the version's
``created_at``, so the same version always gives the same bytes.

The schema does not check that a ``bom-ref`` reference points at something;
:func:`find_bom_ref_problems` does, and every BOM built here passes it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlprov._version import __version__
from mlprov.errors import InvalidInputError, MalformedDocumentError
from mlprov.manifest import Digest
from mlprov.provenance._capture import MetricKey, flatten_params
from mlprov.provenance._model_card import ModelCardSpec, metric_text
from mlprov.provenance._slsa import code_uri
from mlprov.provenance._statement import canonical_json

if TYPE_CHECKING:
    from cyclonedx.model import HashType, Property
    from cyclonedx.model.component import Component

    from mlprov.provenance import ProvenanceInputs
    from mlprov.records import DatasetRef, FileFormat, LineageEdge

__all__ = [
    "CYCLONEDX_HASH_ALGORITHMS",
    "bom_document",
    "bom_serial_number",
    "check_bom_refs",
    "find_bom_ref_problems",
]

#: mlprov digest algorithm -> CycloneDX 1.6 ``hash-alg`` (mlprov's blake2b is BLAKE2b-512).
CYCLONEDX_HASH_ALGORITHMS: dict[str, str] = {
    "sha256": "SHA-256",
    "blake2b": "BLAKE2b-512",
    "blake3": "BLAKE3",
}

_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://mlprov.dev/cyclonedx/bom")


def bom_serial_number(inputs: ProvenanceInputs) -> uuid.UUID:
    """UUIDv5 of ``name/version@digest``: fixed for a version, different between versions."""
    return uuid.uuid5(_SERIAL_NAMESPACE, f"{inputs.name}/{inputs.version}@{inputs.digest}")


def _hash(digest: str) -> HashType:
    from cyclonedx.model import HashAlgorithm, HashType  # noqa: PLC0415 - import on use

    parsed = Digest.parse(digest)
    algorithm = CYCLONEDX_HASH_ALGORITHMS.get(parsed.algorithm)
    if algorithm is None:  # pragma: no cover - Digest accepts only the mapped algorithms
        raise InvalidInputError(f"no CycloneDX hash algorithm for {parsed.algorithm}")
    return HashType(alg=HashAlgorithm(algorithm), content=parsed.hex)


def _model_ref(inputs: ProvenanceInputs) -> str:
    return f"models:/{inputs.name}/{inputs.version}"


def _dataset_ref(dataset: DatasetRef) -> str:
    return f"dataset:{dataset.name}"


def _ancestor_ref(edge: LineageEdge) -> str:
    return f"lineage:{edge.relation}:{edge.target}"


def _ancestor(edge: LineageEdge) -> Component:
    from cyclonedx.model import (  # noqa: PLC0415 - import on use
        ExternalReference,
        ExternalReferenceType,
        Property,
        XsUri,
    )
    from cyclonedx.model.component import Component, ComponentType  # noqa: PLC0415

    properties = [Property(name="mlprov:lineage-relation", value=edge.relation)]
    if edge.registered:
        name, _, number = edge.target.rpartition("/")
        return Component(
            type=ComponentType.MACHINE_LEARNING_MODEL,
            name=name,
            version=number,
            bom_ref=_ancestor_ref(edge),
            hashes=[_hash(edge.digest)],
            properties=properties,
            external_references=[
                ExternalReference(
                    type=ExternalReferenceType.DISTRIBUTION, url=XsUri(f"models:/{edge.target}")
                )
            ],
        )
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=edge.target,
        bom_ref=_ancestor_ref(edge),
        hashes=[_hash(edge.digest)],
        properties=properties,
        external_references=[
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(edge.target))
        ],
    )


def _model_properties(inputs: ProvenanceInputs) -> list[Property]:
    from cyclonedx.model import Property  # noqa: PLC0415 - import on use

    facts: dict[str, str | None] = {
        "mlprov:artifact-name": inputs.artifact_name,
        "mlprov:hash-algorithm": inputs.hash_algorithm,
        "mlprov:created-by": inputs.created_by or None,
        "mlprov:run-id": inputs.run_id,
        "mlprov:builder-id": inputs.builder_id,
        "mlprov:started-on": inputs.started_on,
        "mlprov:finished-on": inputs.finished_on,
        "mlprov:code-commit": inputs.code_commit,
        "mlprov:code-dirty": None if inputs.code_dirty is None else str(inputs.code_dirty).lower(),
        "mlprov:environment-lock": (
            str(inputs.environment.digest) if inputs.environment is not None else None
        ),
    }
    for key, value in flatten_params(inputs.params).items():
        facts[f"mlprov:param:{key}"] = metric_text(value)
    properties = [
        Property(name=name, value=value) for name, value in facts.items() if value is not None
    ]
    # One property per distinct format (what the policy's formats requirement reads).
    properties.extend(
        Property(name="mlprov:format", value=label)
        for label in sorted({f.format for f in inputs.formats})
    )
    return properties


def _file_component(item: FileFormat) -> Component:
    """One artefact file: its format by content, the globals its pickles import (one
    property each) and what the scan noted."""
    from cyclonedx.model import Property  # noqa: PLC0415 - import on use
    from cyclonedx.model.component import Component, ComponentType  # noqa: PLC0415

    properties = [Property(name="mlprov:format", value=item.format)]
    properties.extend(Property(name="mlprov:pickle-global", value=g) for g in item.imports)
    if item.note:
        properties.append(Property(name="mlprov:format-note", value=item.note))
    return Component(
        type=ComponentType.FILE,
        name=item.path,
        bom_ref=f"file:{item.path}",
        properties=properties,
    )


def _model_component(inputs: ProvenanceInputs, card: ModelCardSpec) -> Component:
    from cyclonedx.model import (  # noqa: PLC0415 - import on use
        ExternalReference,
        ExternalReferenceType,
        XsUri,
    )
    from cyclonedx.model.component import Component, ComponentType, Pedigree  # noqa: PLC0415
    from cyclonedx.model.license import DisjunctiveLicense  # noqa: PLC0415
    from cyclonedx.spdx import fixup_id  # noqa: PLC0415

    references = []
    if inputs.code_repo and inputs.code_commit:
        references.append(
            ExternalReference(
                type=ExternalReferenceType.VCS,
                url=XsUri(code_uri(inputs.code_repo, inputs.code_commit)),
                comment=f"training code at commit {inputs.code_commit}",
            )
        )
    licenses = []
    if card.license:
        spdx = fixup_id(card.license)
        licenses.append(
            DisjunctiveLicense(id=spdx) if spdx else DisjunctiveLicense(name=card.license)
        )
    description = card.model_details.description or inputs.description or None
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=inputs.name,
        version=str(inputs.version),
        bom_ref=_model_ref(inputs),
        description=description.strip() if description else None,
        hashes=[_hash(inputs.digest)],
        licenses=licenses,
        properties=_model_properties(inputs),
        external_references=references,
        pedigree=Pedigree(ancestors=[_ancestor(e) for e in inputs.lineage])
        if inputs.lineage
        else None,
        components=[_file_component(f) for f in inputs.formats],
    )


def _dataset_roles(inputs: ProvenanceInputs, card: ModelCardSpec) -> dict[str, str]:
    roles: dict[str, str] = {}
    training = set(card.training_data.datasets)
    evaluation = set(card.evaluation_data.datasets)
    for dataset in inputs.datasets:
        if dataset.name in training and dataset.name in evaluation:
            roles[dataset.name] = "Training and evaluation data."
        elif dataset.name in training:
            roles[dataset.name] = "Training data."
        elif dataset.name in evaluation:
            roles[dataset.name] = "Evaluation data."
    return roles


def _model_card_json(inputs: ProvenanceInputs, card: ModelCardSpec) -> dict[str, Any]:
    details = card.model_details
    parameters: dict[str, Any] = {}
    if details.learning_type:
        parameters["approach"] = {"type": details.learning_type}
    for name, value in (
        ("task", details.task),
        ("architectureFamily", details.architecture_family),
        ("modelArchitecture", details.model_architecture),
    ):
        if value:
            parameters[name] = value
    if inputs.datasets:
        parameters["datasets"] = [{"ref": _dataset_ref(d)} for d in inputs.datasets]
    if details.inputs:
        parameters["inputs"] = [{"format": f} for f in details.inputs]
    if details.outputs:
        parameters["outputs"] = [{"format": f} for f in details.outputs]

    metrics = []
    for key, value in sorted(
        ((MetricKey.parse(k), v) for k, v in inputs.metrics.items()), key=lambda kv: kv[0]
    ):
        entry = {"type": key.name, "value": metric_text(value)}
        if key.slice:
            entry["slice"] = key.slice_text
        metrics.append(entry)

    use = card.intended_use
    caveats = card.caveats_and_recommendations
    considerations: dict[str, Any] = {}
    for name, items in (
        ("users", use.primary_users),
        ("useCases", use.primary_uses),
        ("technicalLimitations", caveats.technical_limitations),
        ("performanceTradeoffs", caveats.performance_tradeoffs),
    ):
        if items:
            considerations[name] = list(items)
    if card.ethical_considerations:
        considerations["ethicalConsiderations"] = [
            {"name": e.name} | ({"mitigationStrategy": e.mitigation} if e.mitigation else {})
            for e in card.ethical_considerations
        ]
    if card.fairness_assessments:
        considerations["fairnessAssessments"] = [
            {
                field: text
                for field, text in (
                    ("groupAtRisk", a.group_at_risk),
                    ("benefits", a.benefits),
                    ("harms", a.harms),
                    ("mitigationStrategy", a.mitigation),
                )
                if text
            }
            for a in card.fairness_assessments
        ]

    model_card: dict[str, Any] = {}
    if parameters:
        model_card["modelParameters"] = parameters
    if metrics:
        model_card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    if considerations:
        model_card["considerations"] = considerations
    return model_card


def bom_document(inputs: ProvenanceInputs) -> dict[str, Any]:
    """The ML-BOM as a JSON structure (serialise with ``canonical_json``)."""
    # cyclonedx-python-lib costs about 0.3 s to import: only when a BOM is built.
    from cyclonedx.model import Property  # noqa: PLC0415
    from cyclonedx.model.bom import Bom  # noqa: PLC0415
    from cyclonedx.model.component import Component, ComponentType  # noqa: PLC0415
    from cyclonedx.output.json import JsonV1Dot6  # noqa: PLC0415
    from packageurl import PackageURL  # noqa: PLC0415

    card = inputs.card if inputs.card is not None else ModelCardSpec()

    names = [d.name for d in inputs.datasets]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"{inputs.name}/{inputs.version}: two datasets share a name")

    bom = Bom(serial_number=bom_serial_number(inputs))
    model = _model_component(inputs, card)
    bom.metadata.component = model
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="mlprov", version=__version__)
    )
    datasets = [
        Component(
            type=ComponentType.DATA,
            name=d.name,
            bom_ref=_dataset_ref(d),
            hashes=[_hash(d.digest)],
            # The hash alone does not say whether it covers one file or a folder's manifest.
            properties=[Property(name="mlprov:digest-of", value=d.digest_of)],
        )
        for d in inputs.datasets
    ]
    libraries = []
    if inputs.environment is not None:
        for package in inputs.environment.packages:
            purl = PackageURL(type="pypi", name=package.name, version=package.version)
            libraries.append(
                Component(
                    type=ComponentType.LIBRARY,
                    name=package.name,
                    version=package.version,
                    purl=purl,
                    bom_ref=purl.to_string(),
                )
            )
    for component in [*datasets, *libraries]:
        bom.components.add(component)
    bom.register_dependency(model, [*datasets, *libraries])

    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    # Fixed, not "now": the BOM describes the version as registered.
    document["metadata"]["timestamp"] = inputs.created_at
    document["metadata"]["component"]["modelCard"] = _model_card_json(inputs, card)
    roles = _dataset_roles(inputs, card)
    by_ref = {_dataset_ref(d): d for d in inputs.datasets}
    for component in document.get("components", []):
        dataset = by_ref.get(component.get("bom-ref", ""))
        if dataset is None:
            continue
        entry: dict[str, Any] = {
            "type": "dataset",
            "name": dataset.name,
            "contents": {"url": dataset.uri},
        }
        if dataset.name in roles:
            entry["description"] = roles[dataset.name]
        component["data"] = [entry]
    document["components"] = sorted(
        document.get("components", []), key=lambda c: str(c.get("bom-ref", ""))
    )
    if not document["components"]:
        del document["components"]
    check_bom_refs(document)
    # Round-trip through the canonical form so the structure holds only JSON types.
    loaded: dict[str, Any] = json.loads(canonical_json(document, "CycloneDX BOM"))
    return loaded


# -- bom-ref integrity --------------------------------------------------------------------

_NESTED_COMPONENT_KEYS = ("components",)
_PEDIGREE_KEYS = ("ancestors", "descendants", "variants")


def _components(document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every component of the BOM, however deeply nested (sub-components, pedigree)."""
    stack: list[Any] = []
    metadata = document.get("metadata")
    if isinstance(metadata, Mapping):
        stack.append(metadata.get("component"))
        tools = metadata.get("tools")
        if isinstance(tools, Mapping):
            stack.extend(tools.get("components") or [])
    stack.extend(document.get("components") or [])
    while stack:
        item = stack.pop()
        if not isinstance(item, Mapping):
            continue
        yield item
        for key in _NESTED_COMPONENT_KEYS:
            stack.extend(item.get(key) or [])
        pedigree = item.get("pedigree")
        if isinstance(pedigree, Mapping):
            for key in _PEDIGREE_KEYS:
                stack.extend(pedigree.get(key) or [])


def _services(document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    stack: list[Any] = list(document.get("services") or [])
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            yield item
            stack.extend(item.get("services") or [])


def find_bom_ref_problems(document: Mapping[str, Any]) -> list[str]:
    """Every broken ``bom-ref`` link of a CycloneDX JSON BOM, one sentence each.

    Checked: each ``bom-ref`` is unique; every reference in ``dependencies`` (``ref``,
    ``dependsOn``, ``provides``), ``compositions`` (``assemblies``, ``dependencies``),
    ``vulnerabilities[].affects[].ref`` names a component or service of the BOM; every
    ``modelCard.modelParameters.datasets[].ref`` names a component of type ``data``.
    BOM-Links to other BOMs (``urn:cdx:``) are not followed.
    """
    problems: list[str] = []
    kinds: dict[str, str] = {}
    for item, kind in [
        *((c, str(c.get("type", "component"))) for c in _components(document)),
        *((s, "service") for s in _services(document)),
    ]:
        ref = item.get("bom-ref")
        if ref is None:
            continue
        if not isinstance(ref, str) or not ref:
            problems.append(f"a {kind} has an empty or non-string bom-ref")
            continue
        if ref in kinds:
            problems.append(f"bom-ref {ref!r} is defined twice")
        kinds[ref] = kind

    def check(ref: Any, where: str, want: str | None = None) -> None:
        if not isinstance(ref, str) or not ref:
            problems.append(f"{where}: reference {ref!r} is not a non-empty string")
        elif ref.startswith("urn:cdx:"):
            return
        elif ref not in kinds:
            problems.append(f"{where}: {ref!r} is not the bom-ref of any component or service")
        elif want is not None and kinds[ref] != want:
            problems.append(f"{where}: {ref!r} is a {kinds[ref]} component, not {want}")

    for index, dependency in enumerate(document.get("dependencies") or []):
        if not isinstance(dependency, Mapping):
            problems.append(f"dependencies[{index}] is not an object")
            continue
        check(dependency.get("ref"), f"dependencies[{index}].ref")
        for key in ("dependsOn", "provides"):
            for position, ref in enumerate(dependency.get(key) or []):
                check(ref, f"dependencies[{index}].{key}[{position}]")
    for index, composition in enumerate(document.get("compositions") or []):
        if isinstance(composition, Mapping):
            for key in ("assemblies", "dependencies"):
                for position, ref in enumerate(composition.get(key) or []):
                    check(ref, f"compositions[{index}].{key}[{position}]")
    for index, vulnerability in enumerate(document.get("vulnerabilities") or []):
        if isinstance(vulnerability, Mapping):
            for position, affected in enumerate(vulnerability.get("affects") or []):
                ref = affected.get("ref") if isinstance(affected, Mapping) else None
                check(ref, f"vulnerabilities[{index}].affects[{position}].ref")
    for component in _components(document):
        card = component.get("modelCard")
        parameters = card.get("modelParameters") if isinstance(card, Mapping) else None
        datasets = parameters.get("datasets") if isinstance(parameters, Mapping) else None
        for position, dataset in enumerate(datasets or []):
            if isinstance(dataset, Mapping) and "ref" in dataset:
                owner = component.get("bom-ref", component.get("name", "?"))
                check(
                    dataset["ref"],
                    f"{owner} modelCard.modelParameters.datasets[{position}].ref",
                    want="data",
                )
    return problems


def check_bom_refs(document: Mapping[str, Any]) -> None:
    """Raise :class:`~mlprov.errors.MalformedDocumentError` naming the first broken
    ``bom-ref`` link (see :func:`find_bom_ref_problems`)."""
    problems = find_bom_ref_problems(document)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise MalformedDocumentError(f"CycloneDX BOM: {problems[0]}{more}")
