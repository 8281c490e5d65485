"""Sample provenance inputs shared by the tests and by the subprocess determinism check.

Run as a script it prints one document's bytes: ``python provenance_samples.py slsa full``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mlprov.provenance import (
    Environment,
    ProvenanceInputs,
    cyclonedx_bom,
    load_card,
    model_card,
    model_card_statement,
    slsa_provenance,
    statement_for_bom,
)
from mlprov.records import DatasetRef, FileFormat, LineageEdge, ModelVersion, Stage

HERE = Path(__file__).resolve().parents[1] / "provenance"
CARD_PATH = HERE / "data" / "card.yaml"

MODEL_DIGEST = "sha256:" + "3f" * 32
BASE_DIGEST = "sha256:" + "a1" * 32
TEACHER_DIGEST = "blake2b:" + "b2" * 64
TRAIN_DIGEST = "sha256:" + "c3" * 32
HOLDOUT_DIGEST = "blake3:" + "d4" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"

PARAMS: dict[str, Any] = {
    "model": {"num_trees": 400, "max_depth": 6, "objective": "binary"},
    "optimizer": {"learning_rate": 0.05, "schedule": [0.1, 0.05, 0.01]},
    "seed": 42,
    "features": ["income", "age", "région"],
}

METRICS: dict[str, Any] = {
    "auc": 0.912,
    "f1": 0.7,
    "rows": 120000,
    "auc[segment=retail]": 0.88,
    "auc[segment=corporate]": 0.93,
    "f1[segment=retail]": 0.66,
    "auc[region=eu,segment=retail]": 0.871,
}

ENVIRONMENT = Environment.of(
    {"numpy": "2.1.3", "LightGBM": "4.5.0", "scikit_learn": "1.5.2", "torch": "2.5.1+cpu"}
)


#: Formats as the registry detects them (given out of path order: inputs sort them).
FORMATS = (
    FileFormat(path="model.safetensors", format="safetensors"),
    FileFormat(
        path="legacy/optimizer.pt",
        format="pickle-import",
        imports=["collections.OrderedDict", "torch._utils._rebuild_tensor_v2"],
        note="zip archive; scanned archive/data.pkl",
    ),
    FileFormat(path="config.json", format="json"),
)


def version_record(**changes: Any) -> ModelVersion:
    """A registered version as the registry service returns it."""
    fields: dict[str, Any] = {
        "name": "credit-risk",
        "version": 7,
        "digest": MODEL_DIGEST,
        "hash_algorithm": "sha256",
        "size": 123456,
        "file_count": 3,
        "single_file": False,
        "artifact_name": "credit-risk-model",
        "stage": Stage.NONE,
        "params": PARAMS,
        "metrics": METRICS,
        "tags": {"team": "risk"},
        "description": "Probability of default for loan applications.",
        "datasets": [
            DatasetRef(
                name="holdout-2025q4", uri="s3://bank-data/holdout/2025q4", digest=HOLDOUT_DIGEST
            ),
            DatasetRef(
                name="applications-2025",
                uri="s3://bank-data/applications/2025/",  # a folder: manifest digest
                digest=TRAIN_DIGEST,
            ),
        ],
        "lineage": [
            LineageEdge(
                relation="teacher",
                target="hf://example/credit-teacher",
                digest=TEACHER_DIGEST,
                registered=False,
            ),
            LineageEdge(
                relation="base", target="credit-risk/6", digest=BASE_DIGEST, registered=True
            ),
        ],
        "source_uri": None,
        "run_id": "run-2026-01-15-0007",
        "code_repo": "https://ci-bot:s3cr3t@git.example.com/risk/credit-risk.git",
        "code_commit": COMMIT,
        "created_at": "2026-01-15T10:20:30.123456Z",
        "created_by": "ci@example.com",
        "formats": list(FORMATS),
    }
    fields.update(changes)
    return ModelVersion(**fields)


def full_inputs() -> ProvenanceInputs:
    """Every field filled: the golden documents."""
    record = version_record()
    return ProvenanceInputs(
        name=record.name,
        version=record.version,
        digest=record.digest,
        artifact_name=record.artifact_name,
        created_at=record.created_at,
        created_by=record.created_by,
        description=record.description,
        params=record.params,
        metrics=record.metrics,
        datasets=record.datasets,
        lineage=record.lineage,
        code_repo=record.code_repo,
        code_commit=record.code_commit,
        code_dirty=False,
        run_id=record.run_id,
        builder_id="https://ci.example.com/runners/gpu-pool@v2",
        started_on="2026-01-15T08:00:00Z",
        finished_on="2026-01-15T10:15:00+00:00",
        environment=ENVIRONMENT,
        card=load_card(CARD_PATH),
        formats=record.formats or (),
    )


def minimal_inputs() -> ProvenanceInputs:
    """Only what every version has: no card, code, datasets, lineage, run or metrics."""
    return ProvenanceInputs(
        name="tiny",
        version=1,
        digest="sha256:" + "0e" * 32,
        artifact_name="model.onnx",
        created_at="2026-02-01T00:00:00Z",
        builder_id="https://mlprov.dev/builders/local/v1",
    )


DOCUMENTS = {
    "slsa": slsa_provenance,
    "bom": cyclonedx_bom,
    "bom-statement": statement_for_bom,
    "card": lambda inputs: model_card(inputs).encode("utf-8"),
    "card-statement": model_card_statement,
}

SAMPLES = {"full": full_inputs, "minimal": minimal_inputs}


if __name__ == "__main__":
    document, sample = sys.argv[1], sys.argv[2]
    sys.stdout.buffer.write(DOCUMENTS[document](SAMPLES[sample]()))
