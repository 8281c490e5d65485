"""What mlprov's signed documents state, read from their verified statements.

The statements are parsed JSON (never re-serialised); these functions pick out the
facts the engine compares and reports: datasets, lineage, params, metrics, builder,
licences, formats and filled model-card sections. They are tolerant of fields they do
not know (STYLE.md, 7) and strict about the ones they read: a field of the wrong shape
is a :class:`~mlprov.errors.MalformedDocumentError` naming it, which the engine reports
as a failed check (the document says something, but not in a form that can be checked).

The shapes are the ones :mod:`mlprov.provenance` writes (docs/provenance.md):

* SLSA Provenance v1: datasets and lineage models are ``resolvedDependencies`` whose
  ``annotations.kind`` is ``dataset`` / ``model``; params are
  ``externalParameters.params``;
* CycloneDX 1.6 ML-BOM: datasets are components of type ``data``, lineage models are
  ``metadata.component.pedigree.ancestors``, metrics are
  ``modelCard.quantitativeAnalysis.performanceMetrics`` (values as text, as the schema
  wants), licences are ``metadata.component.licenses``, artefact formats are
  ``metadata.component.properties`` named ``mlprov:format``;
* model card (``https://mlprov.dev/model-card/v1``): ``metrics`` (numbers as recorded)
  and ``card`` (the user-written sections);
* evaluation results (``https://mlprov.dev/evaluation/v1``): ``metrics`` in mlprov's
  metric shape (flat ``auc[segment=retail]`` keys, or a ``subgroups`` object).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlprov.errors import InvalidInputError, MalformedDocumentError
from mlprov.manifest import HASH_ALGORITHMS

__all__ = [
    "EVALUATION_PREDICATE_TYPE",
    "FORMAT_PROPERTY",
    "DatasetClaim",
    "LineageClaim",
    "bom_datasets",
    "bom_formats",
    "bom_licenses",
    "bom_lineage",
    "bom_metrics",
    "bom_model",
    "card_metrics",
    "card_sections",
    "evaluation_metrics",
    "provenance_builder",
    "provenance_datasets",
    "provenance_lineage",
    "provenance_params",
]

#: Predicate type of an evaluation job's results (docs/verification.md, "Evaluation
#: results"): ``{"metrics": {...}}`` in mlprov's metric shape.
EVALUATION_PREDICATE_TYPE = "https://mlprov.dev/evaluation/v1"

#: BOM property of the model component naming one artefact format found in it by content
#: (``safetensors``, ``onnx``, ``pickle``, ``pickle-import``, ...); one property per format.
FORMAT_PROPERTY = "mlprov:format"

#: CycloneDX 1.6 ``hash-alg`` -> mlprov digest algorithm (the inverse of the writer's map).
_CYCLONEDX_ALGORITHMS = {"SHA-256": "sha256", "BLAKE2b-512": "blake2b", "BLAKE3": "blake3"}


@dataclass(frozen=True)
class DatasetClaim:
    name: str
    uri: str
    digest: str  # "algorithm:hex"


@dataclass(frozen=True)
class LineageClaim:
    relation: str
    target: str  # "name/3" for a registered version, the URI for an external artefact
    digest: str
    registered: bool


def _where(what: str, text: str) -> MalformedDocumentError:
    return MalformedDocumentError(f"the {what} {text}")


def _mapping(value: Any, what: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _where(what, f"has {where} that is not an object")
    return value


def _list(value: Any, what: str, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _where(what, f"has {where} that is not a list")
    return value


def _text(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _where(what, f"has {where} that is not a non-empty string")
    return value


def _digest_set(value: Any, what: str, where: str) -> str:
    """An in-toto digest set ``{algorithm: hex}`` as one mlprov digest ``algorithm:hex``.

    mlprov writes one algorithm per set; of several, the first known one in sorted order
    is taken, so the same set always gives the same digest.
    """
    digests = _mapping(value, what, f"{where}.digest")
    for algorithm in sorted(digests):
        if algorithm in HASH_ALGORITHMS:
            return f"{algorithm}:{_text(digests[algorithm], what, f'{where}.digest').lower()}"
    raise _where(what, f"has {where}.digest without a sha256, blake2b or blake3 digest")


def _predicate(statement: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    return _mapping(statement.get("predicate"), what, "a predicate")


# -- SLSA Provenance v1 -------------------------------------------------------------------


def _dependencies(statement: Mapping[str, Any], kind: str) -> list[tuple[str, Mapping[str, Any]]]:
    what = "SLSA provenance"
    definition = _mapping(
        _predicate(statement, what).get("buildDefinition"), what, "a buildDefinition"
    )
    found = []
    for index, item in enumerate(
        _list(definition.get("resolvedDependencies"), what, "resolvedDependencies")
    ):
        where = f"resolvedDependencies[{index}]"
        entry = _mapping(item, what, where)
        annotations = entry.get("annotations")
        if isinstance(annotations, Mapping) and annotations.get("kind") == kind:
            found.append((where, entry))
    return found


def provenance_datasets(statement: Mapping[str, Any]) -> dict[str, DatasetClaim]:
    """Datasets named in the provenance's resolved dependencies, by name."""
    what = "SLSA provenance"
    claims: dict[str, DatasetClaim] = {}
    for where, entry in _dependencies(statement, "dataset"):
        name = _text(entry.get("name"), what, f"{where}.name")
        if name in claims:
            raise _where(what, f"names dataset {name[:80]!r} twice")
        claims[name] = DatasetClaim(
            name,
            _text(entry.get("uri"), what, f"{where}.uri"),
            _digest_set(entry.get("digest"), what, where),
        )
    return claims


def provenance_lineage(statement: Mapping[str, Any]) -> dict[tuple[str, str], LineageClaim]:
    """Lineage models in the provenance's resolved dependencies, by (relation, target)."""
    what = "SLSA provenance"
    claims: dict[tuple[str, str], LineageClaim] = {}
    for where, entry in _dependencies(statement, "model"):
        annotations = _mapping(entry.get("annotations"), what, f"{where}.annotations")
        relation = _text(annotations.get("relation"), what, f"{where}.annotations.relation")
        target = _text(entry.get("name"), what, f"{where}.name")
        uri = entry.get("uri")
        registered = isinstance(uri, str) and uri == f"models:/{target}"
        claims[(relation, target)] = LineageClaim(
            relation, target, _digest_set(entry.get("digest"), what, where), registered
        )
    return claims


def provenance_params(statement: Mapping[str, Any]) -> Any:
    """``externalParameters.params`` as signed (None when absent)."""
    what = "SLSA provenance"
    definition = _mapping(
        _predicate(statement, what).get("buildDefinition"), what, "a buildDefinition"
    )
    external = _mapping(definition.get("externalParameters", {}), what, "externalParameters")
    return external.get("params")


def provenance_builder(statement: Mapping[str, Any]) -> tuple[str, str]:
    """(``runDetails.builder.id``, ``buildDefinition.buildType``): both required by SLSA v1."""
    what = "SLSA provenance"
    predicate = _predicate(statement, what)
    run = _mapping(predicate.get("runDetails"), what, "runDetails")
    builder = _mapping(run.get("builder"), what, "runDetails.builder")
    definition = _mapping(predicate.get("buildDefinition"), what, "a buildDefinition")
    return (
        _text(builder.get("id"), what, "runDetails.builder.id"),
        _text(definition.get("buildType"), what, "buildDefinition.buildType"),
    )


# -- CycloneDX 1.6 ML-BOM -----------------------------------------------------------------


def bom_model(statement: Mapping[str, Any]) -> Mapping[str, Any]:
    """The BOM's ``metadata.component``: the model the BOM is about."""
    what = "ML-BOM"
    metadata = _mapping(_predicate(statement, what).get("metadata"), what, "metadata")
    return _mapping(metadata.get("component"), what, "metadata.component")


def _bom_hash(component: Mapping[str, Any], where: str) -> str:
    what = "ML-BOM"
    for index, item in enumerate(_list(component.get("hashes"), what, f"{where}.hashes")):
        entry = _mapping(item, what, f"{where}.hashes[{index}]")
        algorithm = _CYCLONEDX_ALGORITHMS.get(str(entry.get("alg")))
        if algorithm is not None:
            content = _text(entry.get("content"), what, f"{where}.hashes[{index}].content")
            return f"{algorithm}:{content.lower()}"
    raise _where(what, f"has {where} without a SHA-256, BLAKE2b-512 or BLAKE3 hash")


def _properties(component: Mapping[str, Any], name: str, where: str) -> list[str]:
    what = "ML-BOM"
    values = []
    for index, item in enumerate(_list(component.get("properties"), what, f"{where}.properties")):
        entry = _mapping(item, what, f"{where}.properties[{index}]")
        if entry.get("name") == name:
            values.append(_text(entry.get("value"), what, f"{where}.properties[{index}].value"))
    return values


def bom_datasets(statement: Mapping[str, Any]) -> dict[str, DatasetClaim]:
    """Components of type ``data``, by name, with the URI of their ``data`` entry."""
    what = "ML-BOM"
    claims: dict[str, DatasetClaim] = {}
    components = _list(_predicate(statement, what).get("components"), what, "components")
    for index, item in enumerate(components):
        where = f"components[{index}]"
        component = _mapping(item, what, where)
        if component.get("type") != "data":
            continue
        name = _text(component.get("name"), what, f"{where}.name")
        if name in claims:
            raise _where(what, f"names dataset {name[:80]!r} twice")
        entries = _list(component.get("data"), what, f"{where}.data")
        uri = ""
        if entries:
            contents = _mapping(
                _mapping(entries[0], what, f"{where}.data[0]").get("contents"),
                what,
                f"{where}.data[0].contents",
            )
            uri = _text(contents.get("url"), what, f"{where}.data[0].contents.url")
        claims[name] = DatasetClaim(name, uri, _bom_hash(component, where))
    return claims


def bom_lineage(statement: Mapping[str, Any]) -> dict[tuple[str, str], LineageClaim]:
    """``pedigree.ancestors`` of the model, by (relation, target)."""
    what = "ML-BOM"
    model = bom_model(statement)
    pedigree = model.get("pedigree")
    if pedigree is None:
        return {}
    ancestors = _list(
        _mapping(pedigree, what, "pedigree").get("ancestors"), what, "pedigree.ancestors"
    )
    claims: dict[tuple[str, str], LineageClaim] = {}
    for index, item in enumerate(ancestors):
        where = f"pedigree.ancestors[{index}]"
        ancestor = _mapping(item, what, where)
        relations = _properties(ancestor, "mlprov:lineage-relation", where)
        if len(relations) != 1:
            raise _where(what, f"has {where} without exactly one mlprov:lineage-relation")
        urls = [
            _mapping(r, what, f"{where}.externalReferences").get("url")
            for r in _list(ancestor.get("externalReferences"), what, f"{where}.externalReferences")
        ]
        registered_urls = [u for u in urls if isinstance(u, str) and u.startswith("models:/")]
        if registered_urls:
            target = registered_urls[0][len("models:/") :]
        elif urls and isinstance(urls[0], str):
            target = urls[0]
        else:
            target = _text(ancestor.get("name"), what, f"{where}.name")
        claims[(relations[0], target)] = LineageClaim(
            relations[0], target, _bom_hash(ancestor, where), bool(registered_urls)
        )
    return claims


def bom_metrics(statement: Mapping[str, Any]) -> dict[str, str]:
    """``quantitativeAnalysis.performanceMetrics``: canonical metric key -> value text."""
    from mlprov.provenance import MetricKey  # noqa: PLC0415

    what = "ML-BOM"
    card = bom_model(statement).get("modelCard")
    if card is None:
        return {}
    analysis = _mapping(card, what, "modelCard").get("quantitativeAnalysis")
    if analysis is None:
        return {}
    entries = _list(
        _mapping(analysis, what, "modelCard.quantitativeAnalysis").get("performanceMetrics"),
        what,
        "performanceMetrics",
    )
    metrics: dict[str, str] = {}
    for index, item in enumerate(entries):
        where = f"performanceMetrics[{index}]"
        entry = _mapping(item, what, where)
        name = _text(entry.get("type"), what, f"{where}.type")
        slice_text = entry.get("slice")
        try:
            key = str(MetricKey.parse(f"{name}[{slice_text}]" if slice_text else name))
        except InvalidInputError as e:
            raise _where(what, f"has {where} that is not an mlprov metric: {e.message}") from e
        metrics[key] = _text(entry.get("value"), what, f"{where}.value")
    return metrics


def bom_licenses(statement: Mapping[str, Any]) -> tuple[str, ...]:
    """The model's licences: SPDX ids (or names where no id is given), sorted."""
    what = "ML-BOM"
    found = set()
    for index, item in enumerate(_list(bom_model(statement).get("licenses"), what, "licenses")):
        entry = _mapping(item, what, f"licenses[{index}]")
        if "expression" in entry:
            found.add(_text(entry["expression"], what, f"licenses[{index}].expression"))
            continue
        license_ = _mapping(entry.get("license"), what, f"licenses[{index}].license")
        found.add(
            _text(license_.get("id") or license_.get("name"), what, f"licenses[{index}].license.id")
        )
    return tuple(sorted(found))


def bom_formats(statement: Mapping[str, Any]) -> tuple[str, ...]:
    """Artefact formats the BOM records for the model (``mlprov:format`` properties)."""
    return tuple(
        sorted(set(_properties(bom_model(statement), FORMAT_PROPERTY, "metadata.component")))
    )


# -- model card and evaluation results -----------------------------------------------------


def card_metrics(statement: Mapping[str, Any]) -> dict[str, Any]:
    """The model card's ``metrics``: canonical metric key -> value, as recorded."""
    from mlprov.provenance import normalize_metrics  # noqa: PLC0415

    what = "model card"
    metrics = _mapping(_predicate(statement, what).get("metrics", {}), what, "metrics")
    try:
        return normalize_metrics(metrics, numbers_only=False)
    except InvalidInputError as e:
        raise _where(what, f"has metrics mlprov cannot read: {e.message}") from e


def _filled(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, Mapping):
        return any(_filled(v) for v in value.values())
    if isinstance(value, list):
        return any(_filled(v) for v in value)
    return value is not None


def card_sections(statement: Mapping[str, Any]) -> frozenset[str]:
    """The card's sections (``ModelCardSpec`` fields) with something written in them."""
    what = "model card"
    card = _mapping(_predicate(statement, what).get("card", {}), what, "card")
    return frozenset(name for name, value in card.items() if _filled(value))


def evaluation_metrics(statement: Mapping[str, Any]) -> dict[str, float]:
    """An evaluation result's metrics: canonical metric key -> number."""
    from mlprov.provenance import normalize_metrics  # noqa: PLC0415

    what = "evaluation result"
    metrics = _mapping(_predicate(statement, what).get("metrics"), what, "metrics")
    try:
        normalised = normalize_metrics(metrics, numbers_only=True)
    except InvalidInputError as e:
        raise _where(what, f"has metrics mlprov cannot read: {e.message}") from e
    return {key: float(value) for key, value in normalised.items() if _number(value)}


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
