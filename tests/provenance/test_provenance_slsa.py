"""SLSA Provenance v1: golden bytes, conformance with in-toto-attestation, determinism."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement as InTotoStatement

from mlprov.errors import InvalidInputError
from mlprov.provenance import (
    SLSA_PREDICATE_TYPE,
    STATEMENT_TYPE,
    TRAINING_BUILD_TYPE,
    ProvenanceInputs,
    model_card_statement,
    slsa_provenance,
    statement_for_bom,
)
from support.provenance_samples import (
    COMMIT,
    DOCUMENTS,
    ENVIRONMENT,
    MODEL_DIGEST,
    SAMPLES,
    full_inputs,
    minimal_inputs,
)

SAMPLES_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "provenance_samples.py"


@pytest.mark.parametrize(
    ("name", "make"), [("slsa-full.json", full_inputs), ("slsa-minimal.json", minimal_inputs)]
)
def test_golden(golden: Callable[[str, bytes], None], name: str, make: Any) -> None:
    golden(name, slsa_provenance(make()))


@pytest.mark.parametrize("make", [full_inputs, minimal_inputs], ids=["full", "minimal"])
def test_parses_into_in_toto_protobuf_classes(make: Any) -> None:
    data = slsa_provenance(make())
    # The reference classes as a conformance oracle: unknown fields are errors here.
    statement = json_format.Parse(data.decode("utf-8"), statement_pb2.Statement())
    InTotoStatement.copy_from_pb(statement).validate()
    assert statement.type == STATEMENT_TYPE
    assert statement.predicate_type == SLSA_PREDICATE_TYPE
    predicate = json.loads(data)["predicate"]
    provenance = json_format.ParseDict(predicate, provenance_pb2.Provenance())
    assert provenance.build_definition.build_type == TRAINING_BUILD_TYPE
    assert provenance.run_details.builder.id == make().builder_id


def test_full_document_content() -> None:
    inputs = full_inputs()
    statement = json.loads(slsa_provenance(inputs))
    assert statement["subject"] == [{"name": "credit-risk", "digest": {"sha256": "3f" * 32}}]
    definition = statement["predicate"]["buildDefinition"]
    external = definition["externalParameters"]
    assert external["name"] == "credit-risk"
    assert external["params"]["model"]["num_trees"] == 400
    assert isinstance(external["params"]["model"]["num_trees"], int)  # not 400.0
    assert external["source"] == {
        "commit": COMMIT,
        "repository": "https://git.example.com/risk/credit-risk.git",
    }
    internal = definition["internalParameters"]
    assert internal["version"] == 7
    assert internal["flatParams"]["optimizer.learning_rate"] == 0.05
    assert internal["flatParams"]["model.num_trees"] == 400

    deps = {(d["annotations"]["kind"], d["name"]): d for d in definition["resolvedDependencies"]}
    source = deps[("source", "source")]
    assert source["uri"] == f"git+https://git.example.com/risk/credit-risk.git@{COMMIT}"
    assert source["digest"] == {"gitCommit": COMMIT}
    assert source["annotations"]["dirty"] is False
    assert deps[("dataset", "applications-2025")]["digest"] == {"sha256": "c3" * 32}
    assert deps[("dataset", "holdout-2025q4")]["digest"] == {"blake3": "d4" * 32}
    base = deps[("model", "credit-risk/6")]
    assert base["uri"] == "models:/credit-risk/6"
    assert base["annotations"]["relation"] == "base"
    teacher = deps[("model", "hf://example/credit-teacher")]
    assert teacher["uri"] == "hf://example/credit-teacher"
    assert teacher["digest"] == {"blake2b": "b2" * 64}
    lock = deps[("environment-lock", "python-environment")]
    assert lock["digest"] == {"sha256": ENVIRONMENT.digest.hex}
    assert lock["annotations"]["packages"] == 4

    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] == "https://ci.example.com/runners/gpu-pool@v2"
    assert run["metadata"] == {
        "invocationId": "run-2026-01-15-0007",
        "startedOn": "2026-01-15T08:00:00Z",
        "finishedOn": "2026-01-15T10:15:00Z",
    }
    # No credentials anywhere in the document.
    assert b"s3cr3t" not in slsa_provenance(inputs)


def test_bytes_are_canonical_json() -> None:
    data = slsa_provenance(full_inputs())
    parsed = json.loads(data)
    again = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert again.encode("utf-8") == data
    assert "région".encode() in data  # UTF-8, not \u escapes


def test_no_builder_id_is_refused() -> None:
    inputs = dataclasses.replace(minimal_inputs(), builder_id=None)
    with pytest.raises(InvalidInputError, match="builder id"):
        slsa_provenance(inputs)


def test_same_inputs_in_another_order_give_the_same_bytes() -> None:
    inputs = full_inputs()
    shuffled = ProvenanceInputs(
        **{
            **{f.name: getattr(inputs, f.name) for f in dataclasses.fields(inputs)},
            "params": dict(reversed(list(inputs.params.items()))),
            "metrics": dict(reversed(list(inputs.metrics.items()))),
            "datasets": tuple(reversed(inputs.datasets)),
            "lineage": tuple(reversed(inputs.lineage)),
        }
    )
    assert slsa_provenance(shuffled) == slsa_provenance(inputs)
    assert slsa_provenance(full_inputs()) == slsa_provenance(full_inputs())


def test_different_inputs_give_different_bytes() -> None:
    inputs = full_inputs()
    assert slsa_provenance(dataclasses.replace(inputs, code_dirty=True)) != slsa_provenance(inputs)
    assert slsa_provenance(dataclasses.replace(inputs, params={"seed": 43})) != slsa_provenance(
        inputs
    )


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
@pytest.mark.parametrize("sample", ["full", "minimal"])
def test_identical_across_processes(document: str, sample: str) -> None:
    expected = DOCUMENTS[document](SAMPLES[sample]())
    outputs = []
    for seed in ("1", "2"):
        # Different hash seeds change set and dict-of-set iteration orders: a document
        # that depended on them would differ between the two runs.
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONWARNINGS": "error"}
        result = subprocess.run(
            [sys.executable, str(SAMPLES_SCRIPT), document, sample],
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == expected


def test_subject_is_the_model_digest_in_every_statement() -> None:
    inputs = full_inputs()
    for data in (slsa_provenance(inputs), statement_for_bom(inputs), model_card_statement(inputs)):
        statement = json.loads(data)
        assert statement["_type"] == STATEMENT_TYPE
        assert statement["subject"] == [
            {"name": "credit-risk", "digest": {"sha256": MODEL_DIGEST.split(":")[1]}}
        ]
