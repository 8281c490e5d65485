"""The public surface, ProvenanceInputs, and the deterministic statement serialisation."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import mlprov.provenance
from mlprov.errors import InvalidInputError
from mlprov.provenance import (
    Environment,
    GitInfo,
    ProvenanceInputs,
    ResourceDescriptor,
    RunInfo,
    Statement,
    canonical_json,
    format_timestamp,
    slsa_provenance,
)
from support.provenance_samples import COMMIT, MODEL_DIGEST, full_inputs, version_record

EXPECTED_PUBLIC = {
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
}


def test_public_surface_is_pinned() -> None:
    assert set(mlprov.provenance.__all__) == EXPECTED_PUBLIC
    for name in EXPECTED_PUBLIC:
        assert hasattr(mlprov.provenance, name), name


def test_statements_alone_leave_the_documents_code_unloaded() -> None:
    # An export's listing and a deployment's bundle statement need only Statement: the
    # ML-BOM, model-card and capture modules (and YAML) load on first use of their names.
    code = (
        "import sys\n"
        "from mlprov import provenance\n"
        "provenance.Statement\n"
        "heavy = ('yaml', 'mlprov.provenance._model_card', 'mlprov.provenance._cyclonedx',\n"
        "         'mlprov.provenance._capture')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "provenance.ModelCardSpec\n"
        "print('mlprov.provenance._model_card' in sys.modules)\n"
        "print(sorted(set(provenance.__all__) - set(dir(provenance))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split("\n")[:3] == ["[]", "True", "[]"]


def test_constants() -> None:
    assert mlprov.provenance.TRAINING_BUILD_TYPE == "https://mlprov.dev/training/v1"
    assert mlprov.provenance.MODEL_CARD_PREDICATE_TYPE == "https://mlprov.dev/model-card/v1"
    assert mlprov.provenance.CYCLONEDX_PREDICATE_TYPE == "https://cyclonedx.org/bom"
    assert mlprov.provenance.SLSA_PREDICATE_TYPE == "https://slsa.dev/provenance/v1"


# -- canonical JSON -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [1, 2.5, None, True]}, b'{"a":[1,2.5,null,true],"b":1}'),
        ({"epochs": 3, "lr": 3.0}, b'{"epochs":3,"lr":3.0}'),
        ({"x": 0.1 + 0.2}, b'{"x":0.30000000000000004}'),
        ({"x": 1e-7, "y": 1e22}, b'{"x":1e-07,"y":1e+22}'),
        ({"name": "région ☃"}, '{"name":"région ☃"}'.encode()),
        ({"t": (1, 2)}, b'{"t":[1,2]}'),
        ({"big": 2**70}, b'{"big":1180591620717411303424}'),
    ],
)
def test_canonical_json(value: Any, expected: bytes) -> None:
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"x": float("nan")}, "x is nan"),
        ({"x": [float("inf")]}, r"x\[0\] is inf"),
        ({1: "a"}, "key 1"),
        ({"x": {1, 2}}, "type set"),
        ({"x": b"bytes"}, "type bytes"),
        ({"x": datetime(2026, 1, 1, tzinfo=timezone.utc)}, "type datetime"),
        ({"x": "\ud800"}, "not valid Unicode"),
    ],
)
def test_canonical_json_refuses(value: Any, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        canonical_json(value)


def test_canonical_json_refuses_deep_nesting() -> None:
    value: Any = 1
    for _ in range(100):
        value = [value]
    with pytest.raises(InvalidInputError, match="nests deeper than 64"):
        canonical_json(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05.500000Z", "2026-01-02T03:04:05.500000Z"),
        ("2026-01-02T04:04:05+01:00", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05.000000Z", "2026-01-02T03:04:05Z"),
    ],
)
def test_timestamps(text: str, expected: str) -> None:
    assert format_timestamp(text) == expected


@pytest.mark.parametrize("text", ["2026-01-02T03:04:05", "yesterday", ""])
def test_bad_timestamps(text: str) -> None:
    with pytest.raises(InvalidInputError):
        format_timestamp(text)


def test_statement_rules() -> None:
    subject = ResourceDescriptor(name="m", digest={"sha256": "ab" * 32})
    statement = Statement(subject=(subject,), predicate_type="https://x/y", predicate={"a": 1})
    assert statement.to_bytes() == (
        b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"a":1},'
        b'"predicateType":"https://x/y","subject":[{"digest":{"sha256":"' + b"ab" * 32 + b'"},'
        b'"name":"m"}]}'
    )
    with pytest.raises(InvalidInputError, match="at least one subject"):
        Statement(subject=(), predicate_type="p", predicate={})
    with pytest.raises(InvalidInputError, match="has no digest"):
        Statement(subject=(ResourceDescriptor(uri="x"),), predicate_type="p", predicate={})
    with pytest.raises(InvalidInputError, match="needs a uri, a digest or content"):
        ResourceDescriptor(name="nothing")
    with pytest.raises(InvalidInputError, match="lower-case hex"):
        ResourceDescriptor(digest={"sha256": "AB"})
    with pytest.raises(InvalidInputError, match="cannot represent"):
        Statement(subject=(subject,), predicate_type="p", predicate={"x": float("nan")})


# -- ProvenanceInputs -------------------------------------------------------------------


def test_from_version_with_captured_facts() -> None:
    record = version_record()
    run = RunInfo(
        run_id="run-2026-01-15-0007",
        builder_id="https://ci.example.com/runners/gpu-pool@v2",
        started_on="2026-01-15T08:00:00Z",
        finished_on="2026-01-15T10:15:00Z",
    )
    expected = full_inputs()
    inputs = ProvenanceInputs.from_version(
        record,
        run=run,
        git=GitInfo(commit=COMMIT, dirty=False, repo_url=None),
        environment=expected.environment,
        card=expected.card,
    )
    assert inputs == expected
    assert slsa_provenance(inputs) == slsa_provenance(expected)
    assert inputs.code_repo == "https://git.example.com/risk/credit-risk.git"


def test_from_version_alone() -> None:
    inputs = ProvenanceInputs.from_version(version_record(code_repo=None, code_commit=None))
    assert inputs.builder_id is None
    assert inputs.code_commit is None
    assert inputs.card is None
    assert inputs.digest == MODEL_DIGEST
    assert inputs.created_at == "2026-01-15T10:20:30.123456Z"


def test_from_version_fills_code_from_git() -> None:
    git = GitInfo(commit="f" * 40, dirty=True, repo_url="https://github.com/o/r")
    inputs = ProvenanceInputs.from_version(
        version_record(code_repo=None, code_commit=None), git=git
    )
    assert (inputs.code_repo, inputs.code_commit, inputs.code_dirty) == (
        "https://github.com/o/r",
        "f" * 40,
        True,
    )


def test_from_version_refuses_contradictions() -> None:
    record = version_record()
    with pytest.raises(InvalidInputError, match="captured commit"):
        ProvenanceInputs.from_version(record, git=GitInfo(commit="e" * 40, dirty=False))
    started = datetime(2026, 1, 15, tzinfo=timezone.utc)
    with pytest.raises(InvalidInputError, match=r"captured run .* not the one recorded"):
        ProvenanceInputs.from_version(
            record, run=RunInfo("other-run", "https://b", started.isoformat())
        )


def test_from_version_reads_recorded_training_capture() -> None:
    expected = full_inputs()
    assert expected.environment is not None
    assert expected.card is not None
    record = version_record(
        code_dirty=False,
        builder_id=expected.builder_id,
        started_at="2026-01-15T08:00:00.000000Z",
        finished_at="2026-01-15T10:15:00.000000Z",
        environment=expected.environment.lock_lines,
        card=expected.card.to_json(),
    )
    assert ProvenanceInputs.from_version(record) == expected
    # Captured facts that agree with the record are accepted; others are refused.
    same = ProvenanceInputs.from_version(
        record, environment=expected.environment, card=expected.card
    )
    assert same == expected
    with pytest.raises(InvalidInputError, match="captured environment"):
        ProvenanceInputs.from_version(record, environment=Environment.of({"numpy": "1.0"}))
    with pytest.raises(InvalidInputError, match="captured builder id"):
        ProvenanceInputs.from_version(
            record, run=RunInfo("run-2026-01-15-0007", "https://other", "2026-01-15T08:00:00Z")
        )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": "Credit Risk"}, "invalid model name"),
        ({"version": 0}, "positive integer"),
        ({"digest": "sha256:xyz"}, "malformed sha256 digest"),
        ({"digest": "md5:" + "0" * 32}, "unsupported digest algorithm"),
        ({"code_commit": "HEAD"}, "not a full lower-case hex git commit"),
        ({"created_at": "2026-01-15 10:20"}, "no time zone"),
        ({"params": {"lr": float("inf")}}, "cannot represent"),
        ({"metrics": {"auc[segment]": 0.5}}, "invalid subgroup"),
        ({"finished_on": "2026-01-15T07:00:00Z"}, "finished .* before it started"),
    ],
)
def test_inputs_are_validated(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        dataclasses.replace(full_inputs(), **change)


def test_inputs_copy_the_params() -> None:
    params: dict[str, Any] = {"optim": {"lr": 0.1}}
    inputs = dataclasses.replace(full_inputs(), params=params)
    before = slsa_provenance(inputs)
    params["optim"]["lr"] = 0.2
    assert slsa_provenance(inputs) == before


def test_duplicate_dataset_names_are_refused() -> None:
    inputs = full_inputs()
    clash = inputs.datasets[0].model_copy(update={"uri": "s3://elsewhere"})
    with pytest.raises(InvalidInputError, match="two different datasets are named"):
        dataclasses.replace(inputs, datasets=(*inputs.datasets, clash))
    same = dataclasses.replace(inputs, datasets=(*inputs.datasets, inputs.datasets[0]))
    assert same.datasets == inputs.datasets


def test_nested_subgroup_metrics_are_normalised() -> None:
    nested = dataclasses.replace(
        full_inputs(),
        metrics={
            "auc": 0.912,
            "f1": 0.7,
            "rows": 120000,
            "subgroups": {
                "segment=retail": {"auc": 0.88, "f1": 0.66},
                "segment=corporate": {"auc": 0.93},
                "segment=retail,region=eu": {"auc": 0.871},
            },
        },
    )
    assert nested == full_inputs()
    assert json.loads(slsa_provenance(nested)) == json.loads(slsa_provenance(full_inputs()))


def test_finish_after_start_is_kept() -> None:
    started = datetime(2026, 1, 15, 8, tzinfo=timezone.utc)
    inputs = dataclasses.replace(
        full_inputs(),
        started_on=started.isoformat(),
        finished_on=(started + timedelta(seconds=1)).isoformat(),
    )
    assert inputs.finished_on == "2026-01-15T08:00:01Z"
