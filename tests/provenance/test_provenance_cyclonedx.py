"""CycloneDX 1.6 ML-BOM: golden bytes, strict schema validation, bom-ref integrity."""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from mlprov.errors import MalformedDocumentError
from mlprov.provenance import (
    CYCLONEDX_PREDICATE_TYPE,
    check_bom_refs,
    cyclonedx_bom,
    find_bom_ref_problems,
    statement_for_bom,
)
from support.provenance_samples import ENVIRONMENT, full_inputs, minimal_inputs


def _validate(data: bytes) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode("utf-8"))
    assert error is None, str(error)


@pytest.mark.parametrize(
    ("name", "make"), [("bom-full.json", full_inputs), ("bom-minimal.json", minimal_inputs)]
)
def test_golden(golden: Callable[[str, bytes], None], name: str, make: Any) -> None:
    golden(name, cyclonedx_bom(make()))


@pytest.mark.parametrize("make", [full_inputs, minimal_inputs], ids=["full", "minimal"])
def test_passes_strict_schema_validation(make: Any) -> None:
    _validate(cyclonedx_bom(make()))


def test_the_validator_can_fail() -> None:
    # The oracle must be able to say no: a metric value as a number breaks the schema.
    bom = json.loads(cyclonedx_bom(full_inputs()))
    bom["metadata"]["component"]["modelCard"]["quantitativeAnalysis"]["performanceMetrics"][0][
        "value"
    ] = 0.9
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom))
    assert error is not None


@pytest.mark.parametrize("make", [full_inputs, minimal_inputs], ids=["full", "minimal"])
def test_every_bom_ref_reference_resolves(make: Any) -> None:
    bom = json.loads(cyclonedx_bom(make()))
    assert find_bom_ref_problems(bom) == []
    check_bom_refs(bom)


def _full_bom() -> dict[str, Any]:
    return json.loads(cyclonedx_bom(full_inputs()))  # type: ignore[no-any-return]


def _model(bom: dict[str, Any]) -> dict[str, Any]:
    return bom["metadata"]["component"]  # type: ignore[no-any-return]


def _dangling_depends_on(bom: dict[str, Any]) -> None:
    bom["dependencies"][0].setdefault("dependsOn", []).append("dataset:missing")


def _dangling_dependency_ref(bom: dict[str, Any]) -> None:
    bom["dependencies"].append({"ref": "pkg:pypi/ghost@1.0"})


def _duplicate_bom_ref(bom: dict[str, Any]) -> None:
    bom["components"].append(copy.deepcopy(bom["components"][0]))


def _card_dataset_ref_missing(bom: dict[str, Any]) -> None:
    _model(bom)["modelCard"]["modelParameters"]["datasets"].append({"ref": "dataset:nope"})


def _card_dataset_ref_to_library(bom: dict[str, Any]) -> None:
    _model(bom)["modelCard"]["modelParameters"]["datasets"][0]["ref"] = "pkg:pypi/numpy@2.1.3"


def _removed_data_component(bom: dict[str, Any]) -> None:
    bom["components"] = [c for c in bom["components"] if c["bom-ref"] != "dataset:holdout-2025q4"]


def _composition_to_nowhere(bom: dict[str, Any]) -> None:
    bom["compositions"] = [{"aggregate": "complete", "assemblies": ["models:/other/1"]}]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_dangling_depends_on, "'dataset:missing' is not the bom-ref"),
        (_dangling_dependency_ref, "'pkg:pypi/ghost@1.0' is not the bom-ref"),
        (_duplicate_bom_ref, "is defined twice"),
        (_card_dataset_ref_missing, "'dataset:nope' is not the bom-ref"),
        (_card_dataset_ref_to_library, "is a library component, not data"),
        (_removed_data_component, "'dataset:holdout-2025q4' is not the bom-ref"),
        (_composition_to_nowhere, "'models:/other/1' is not the bom-ref"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_broken_references_are_detected(breakage: Callable[..., None], expected: str) -> None:
    bom = _full_bom()
    breakage(bom)
    problems = find_bom_ref_problems(bom)
    assert any(expected in p for p in problems), problems
    with pytest.raises(MalformedDocumentError) as raised:
        check_bom_refs(bom)
    assert raised.value.exit_code == 2
    assert "\n" not in str(raised.value)


def test_schema_alone_does_not_catch_a_dangling_reference() -> None:
    # Why the checker exists: this BOM is schema-valid yet refers to nothing.
    bom = _full_bom()
    _dangling_depends_on(bom)
    _validate(json.dumps(bom).encode())
    assert find_bom_ref_problems(bom)


def test_model_component_and_model_card() -> None:
    bom = _full_bom()
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["timestamp"] == "2026-01-15T10:20:30.123456Z"
    model = _model(bom)
    assert model["type"] == "machine-learning-model"
    assert model["bom-ref"] == "models:/credit-risk/7"
    assert model["hashes"] == [{"alg": "SHA-256", "content": "3f" * 32}]
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    card = model["modelCard"]
    parameters = card["modelParameters"]
    assert parameters["approach"] == {"type": "supervised"}
    assert parameters["task"] == "binary-classification"
    assert parameters["architectureFamily"] == "gradient-boosted trees"
    assert parameters["datasets"] == [
        {"ref": "dataset:applications-2025"},
        {"ref": "dataset:holdout-2025q4"},
    ]
    assert parameters["inputs"] == [{"format": "tabular"}]
    metrics = card["quantitativeAnalysis"]["performanceMetrics"]
    assert {"type": "auc", "value": "0.912"} in metrics
    assert {"type": "rows", "value": "120000"} in metrics
    assert {"type": "auc", "value": "0.88", "slice": "segment=retail"} in metrics
    assert {"type": "auc", "value": "0.871", "slice": "region=eu,segment=retail"} in metrics
    assert len(metrics) == 7
    assert all(isinstance(m["value"], str) for m in metrics)
    considerations = card["considerations"]
    assert considerations["users"] == ["Credit officers", "Risk analysts"]
    assert considerations["ethicalConsiderations"][0]["mitigationStrategy"].startswith("Postcode")
    assert considerations["fairnessAssessments"][0]["groupAtRisk"] == "Applicants under 25"
    assert considerations["technicalLimitations"] == ["Not calibrated for loans above EUR 1M."]


def test_datasets_ancestors_and_libraries() -> None:
    bom = _full_bom()
    components = {c["bom-ref"]: c for c in bom["components"]}
    assert list(components) == sorted(components)
    holdout = components["dataset:holdout-2025q4"]
    assert holdout["type"] == "data"
    assert holdout["hashes"] == [{"alg": "BLAKE3", "content": "d4" * 32}]
    assert holdout["data"] == [
        {
            "type": "dataset",
            "name": "holdout-2025q4",
            "contents": {"url": "s3://bank-data/holdout/2025q4"},
            "description": "Evaluation data.",
        }
    ]
    libraries = {ref: c for ref, c in components.items() if c["type"] == "library"}
    assert sorted(libraries) == [
        "pkg:pypi/lightgbm@4.5.0",
        "pkg:pypi/numpy@2.1.3",
        "pkg:pypi/scikit-learn@1.5.2",
        "pkg:pypi/torch@2.5.1%2Bcpu",
    ]
    assert len(libraries) == len(ENVIRONMENT.packages)
    ancestors = {a["bom-ref"]: a for a in _model(bom)["pedigree"]["ancestors"]}
    teacher = ancestors["lineage:teacher:hf://example/credit-teacher"]
    assert teacher["hashes"] == [{"alg": "BLAKE2b-512", "content": "b2" * 64}]
    assert {"name": "mlprov:lineage-relation", "value": "teacher"} in teacher["properties"]
    base = ancestors["lineage:base:credit-risk/6"]
    assert (base["name"], base["version"]) == ("credit-risk", "6")
    model_dependencies = next(d for d in bom["dependencies"] if d["ref"] == "models:/credit-risk/7")
    assert sorted(model_dependencies["dependsOn"]) == sorted(
        ref for ref in components if ref != "models:/credit-risk/7"
    )


def test_serial_number_is_fixed_per_version() -> None:
    first = json.loads(cyclonedx_bom(full_inputs()))["serialNumber"]
    assert first == json.loads(cyclonedx_bom(full_inputs()))["serialNumber"]
    parsed = uuid.UUID(first.removeprefix("urn:uuid:"))
    assert parsed.version == 5
    other = dataclasses.replace(full_inputs(), version=8)
    assert json.loads(cyclonedx_bom(other))["serialNumber"] != first


def test_statement_for_bom_carries_the_bom() -> None:
    inputs = full_inputs()
    statement = json.loads(statement_for_bom(inputs))
    assert statement["predicateType"] == CYCLONEDX_PREDICATE_TYPE
    assert statement["predicate"] == json.loads(cyclonedx_bom(inputs))
    _validate(json.dumps(statement["predicate"]).encode())


def test_bom_statement_golden(golden: Callable[[str, bytes], None]) -> None:
    golden("bom-statement-full.json", statement_for_bom(full_inputs()))
