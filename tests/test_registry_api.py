"""The registry service through its Python API, on SQLite and PostgreSQL: registration,
immutable versions, alias and stage rules, downloads, and failures that change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from mlprov.artifacts import open_artifact_store
from mlprov.errors import (
    ConflictError,
    DigestMismatchError,
    InvalidInputError,
    NotFoundError,
)
from mlprov.hashing import hash_model
from mlprov.records import ModelVersion, Stage
from mlprov.registry import DatasetInput, LineageInput, Registry, VersionInput
from mlprov.store import open_metadata_store
from support.registry_env import RegistryEnv, make_model

COMMIT = "c0ffee" * 6 + "c0ff"
DATASET = "train=s3://data/train.parquet@sha256:" + "a" * 64


@pytest.fixture
def api(reg: RegistryEnv) -> Iterator[Registry]:
    registry = reg.registry()
    try:
        yield registry
    finally:
        registry.close()


def _model(tmp_path: Path, label: str, **extra: bytes) -> Path:
    return make_model(tmp_path / label, {"w.bin": label.encode(), **extra} if extra else None)


def _versions(api: Registry, tmp_path: Path, name: str, count: int) -> None:
    for i in range(1, count + 1):
        api.register(make_model(tmp_path / f"{name}{i}", {"w.bin": f"{name}{i}".encode()}), name)


# -- registration --------------------------------------------------------------------------


def test_register_records_everything_and_the_manifest_matches_the_files(
    api: Registry, reg: RegistryEnv, tmp_path: Path
) -> None:
    folder = make_model(tmp_path / "m")
    info = VersionInput(
        params={"lr": 0.1, "layers": [2, 3]},
        metrics={"auc": 0.91, "loss": 0.25},
        tags={"team": "risk"},
        description="first",
        datasets=[DatasetInput.parse(DATASET)],
        source_uri="s3://bucket/run-7/model",
        run_id="run-7",
        code_repo="https://git.example/risk",
        code_commit=COMMIT,
    )
    record = api.register(folder, "credit-risk", info)
    assert (record.name, record.version, record.stage) == ("credit-risk", 1, Stage.NONE)
    assert record.digest == str(hash_model(folder).digest)
    assert (record.file_count, record.size) == (3, 14 + 2048)
    assert record.params == {"lr": 0.1, "layers": [2, 3]}
    assert record.metrics == {"auc": 0.91, "loss": 0.25}
    assert record.tags == {"team": "risk"}
    assert [d.to_json() for d in record.datasets] == [
        {"name": "train", "uri": "s3://data/train.parquet", "digest": "sha256:" + "a" * 64}
    ]
    assert (record.source_uri, record.run_id, record.code_commit) == (
        "s3://bucket/run-7/model",
        "run-7",
        COMMIT,
    )
    assert record.created_by == "tester@ci"
    assert api.manifest("credit-risk/1") == hash_model(folder)
    assert api.get_model("credit-risk").latest_version == 1
    # Every file's bytes are stored, content-addressed.
    blobs = set(api.artifacts.digests())
    assert {f.digest.hex for f in hash_model(folder)} <= blobs
    entries = api.audit_log()
    assert [(e.action, e.subject) for e in entries] == [
        ("model.create", "credit-risk"),
        ("version.register", "credit-risk/1"),
    ]
    assert json.loads(entries[1].details)["digest"] == record.digest
    assert reg.snapshot()["rows"]["version_files"] == 3


def test_the_record_registration_returns_is_the_one_stored(api: Registry, tmp_path: Path) -> None:
    # commit_version returns the record it wrote instead of reading it back: every field
    # must equal the stored record's, here with everything a version can record.
    base = api.register(_model(tmp_path, "base"), "base")
    info = VersionInput(
        params={"lr": 0.1, "nested": {"b": 1, "a": [1.5, None, "x"]}},
        metrics={"auc": 0.91, "auc[segment=retail]": 0.88},
        tags={"zeta": "1", "alpha": "2", "mid": "3"},
        description="everything",
        datasets=[
            DatasetInput.parse(DATASET),
            DatasetInput.parse("eval=s3://data/eval.parquet@sha256:" + "c" * 64),
        ],
        lineage=[
            LineageInput("teacher", "hf://org/t@sha256:" + "b" * 64),
            LineageInput("base", "base@latest"),
        ],
        source_uri="s3://bucket/run-7/model",
        run_id="run-7",
        code_repo="https://git.example/risk",
        code_commit=COMMIT,
        code_dirty=True,
        builder_id="https://ci.example/builder",
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T01:00:00Z",
        environment=["torch==2.3.0", "numpy==2.0.0"],
        card={"license": "apache-2.0"},
    )
    returned = api.register(_model(tmp_path, "child"), "child", info)
    stored = api.get_version("child/1")
    assert returned == stored
    assert returned.to_json() == stored.to_json()
    assert returned.lineage[1].digest == base.digest
    # And with nothing but files (the defaults the draft fills in).
    plain = api.register(_model(tmp_path, "plain"), "child")
    assert plain == api.get_version("child/2")


def test_a_known_model_is_registered_with_only_the_gc_watch_before_its_write(
    api: Registry,
) -> None:
    # A model never stops existing, so once this registry has stored one, registering
    # it again from given bytes opens only the read of gc's claims (one statement, made
    # before the bytes are stored: ADR 0045) and the write transaction; a name not
    # known, or lineage to resolve, still reads first.
    import hashlib

    from sqlalchemy import event

    from mlprov.registry import UploadedFile

    def register(name: str, data: bytes, info: VersionInput | None = None) -> ModelVersion:
        digest = hashlib.sha256(data).hexdigest()
        return api.register_uploaded(
            name, [UploadedFile("w.bin", digest, len(data))], info, contents={"w.bin": data}
        )

    register("known", b"first")
    api.create_deployment("stack")
    engine = api.metadata.engine
    begun: list[str] = []

    def count(_connection: Any) -> None:
        begun.append("begin")

    event.listen(engine, "begin", count)
    try:
        register("known", b"second")
        assert len(begun) == 2
        begun.clear()
        register("known", b"third", VersionInput(lineage=[LineageInput("parent", "known/1")]))
        assert len(begun) == 3  # the lineage is resolved before the bytes are stored
        begun.clear()
        with pytest.raises(ConflictError):
            register("stack", b"fourth")  # not known: checked before anything is stored
        assert len(begun) == 1
    finally:
        event.remove(engine, "begin", count)
    assert [v.version for v in api.list_versions("known")] == [1, 2, 3]
    assert api.get_version("known/3").lineage[0].target == "known/1"
    assert not api.artifacts.exists(hashlib.sha256(b"fourth").hexdigest())


def test_same_bytes_again_are_a_new_version_and_blobs_are_stored_once(
    api: Registry, tmp_path: Path
) -> None:
    folder = make_model(tmp_path / "m")
    first = api.register(folder, "m")
    blobs = api.artifacts.digests()
    second = api.register(folder, "m")
    assert (first.version, second.version) == (1, 2)
    assert first.digest == second.digest
    assert api.artifacts.digests() == blobs
    assert api.get_version("m/1") == first  # the first version did not change


def test_a_single_file_model_keeps_its_name(api: Registry, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx bytes")
    record = api.register(path, "onnx")
    assert record.single_file
    assert record.artifact_name == "model.onnx"
    assert [f.path for f in api.manifest("onnx/1")] == ["."]


def test_versions_are_immutable_only_tags_and_description_change_audited(
    api: Registry, tmp_path: Path
) -> None:
    api.register(_model(tmp_path, "a"), "m", VersionInput(tags={"keep": "1"}, description="d0"))
    original = api.get_version("m/1")
    with pytest.raises(pydantic.ValidationError):
        original.params = {"lr": 1}  # type: ignore[misc]
    head_before = len(api.audit_log())

    api.tag_version("m/1", {"team": "risk", "keep": None}, reason="triage")
    api.describe_version("m@latest", "d1")
    api.register(_model(tmp_path, "b"), "m")  # a new version never touches the old one

    changed = api.get_version("m/1")
    assert changed.tags == {"team": "risk"}
    assert changed.description == "d1"
    assert changed.model_dump(exclude={"tags", "description"}) == original.model_dump(
        exclude={"tags", "description"}
    )
    entries = api.audit_log()[head_before:]
    assert [(e.action, e.subject, e.reason) for e in entries] == [
        ("version.tag", "m/1", "triage"),
        ("version.describe", "m/1", ""),
        ("version.register", "m/2", ""),
    ]
    with pytest.raises(InvalidInputError):
        api.tag_version("m/1", {})


def test_model_tags_and_search(api: Registry, tmp_path: Path) -> None:
    api.create_model("risk-a", tags={"team": "risk"})
    api.create_model("risk-b")
    api.create_model("vision")
    api.tag_model("risk-b", {"team": "risk", "tier": "1"}, reason="owner")
    api.tag_model("risk-b", {"tier": None})
    assert [m.name for m in api.list_models(prefix="risk")] == ["risk-a", "risk-b"]
    assert [m.name for m in api.list_models(tags={"team": "risk"})] == ["risk-a", "risk-b"]
    assert api.get_model("risk-b").tags == {"team": "risk"}
    # A prefix is text, not a LIKE pattern.
    assert api.list_models(prefix="risk_") == []
    assert api.list_models(prefix="%") == []
    with pytest.raises(ConflictError):
        api.create_model("vision")
    actions = [e.action for e in api.audit_log()]
    assert actions.count("model.create") == 3
    assert actions.count("model.tag") == 2


def test_lineage_is_bound_to_the_target_digest(api: Registry, tmp_path: Path) -> None:
    base = api.register(_model(tmp_path, "base"), "base")
    child = api.register(
        _model(tmp_path, "child"),
        "child",
        VersionInput(
            lineage=[
                LineageInput("base", "base@latest"),
                LineageInput("teacher", "hf://org/t@sha256:" + "b" * 64),
            ]
        ),
    )
    assert [(e.relation, e.target, e.digest, e.registered) for e in child.lineage] == [
        ("base", "base/1", base.digest, True),
        ("teacher", "hf://org/t", "sha256:" + "b" * 64, False),
    ]


# -- failures change nothing -------------------------------------------------------------------


def test_a_failure_before_the_commit_leaves_no_rows_and_keeps_every_blob(
    api: Registry, reg: RegistryEnv, tmp_path: Path
) -> None:
    api.register(make_model(tmp_path / "seed"), "m")
    before = reg.snapshot()
    prepared = api.prepare_version(
        make_model(tmp_path / "new", {"w.bin": b"fresh", "config.json": '{"layers": 2}\n'}), "m"
    )
    stored = api.store_files(prepared)

    def explode(draft: ModelVersion) -> list[Any]:
        assert draft.version == 2
        raise RuntimeError("evidence could not be made")

    with pytest.raises(RuntimeError, match="evidence"):
        api.commit_version(prepared, stored, evidence_for=explode)
    after = reg.snapshot()
    # No row and no audit entry; the new blob stays, unreferenced, for `gc`: deleting it
    # could break a concurrent registration that is reusing the same bytes.
    assert {k: v for k, v in after.items() if k != "blobs"} == {
        k: v for k, v in before.items() if k != "blobs"
    }
    assert set(before["blobs"]) <= set(after["blobs"])
    assert api.register(make_model(tmp_path / "new"), "m").version == 2


def test_a_blob_reused_by_a_concurrent_registration_survives_a_failed_one(
    api: Registry, tmp_path: Path
) -> None:
    """Registration A stores a new blob; B reuses it and commits; A then fails. B's
    bytes must still be there (the old compensation deleted the blob A had created)."""
    shared = {"weights.bin": b"shared weights " * 100}
    prepared = api.prepare_version(make_model(tmp_path / "a", shared), "a")
    stored = api.store_files(prepared)

    def register_b_then_fail(draft: ModelVersion) -> list[Any]:
        api.register(make_model(tmp_path / "b", shared), "b")
        raise RuntimeError("A fails after B reused its blob")

    with pytest.raises(RuntimeError, match="A fails"):
        api.commit_version(prepared, stored, evidence_for=register_b_then_fail)
    api.download("b/1", tmp_path / "out")
    assert (tmp_path / "out" / "weights.bin").read_bytes() == shared["weights.bin"]


def test_refused_inputs_change_nothing(api: Registry, reg: RegistryEnv, tmp_path: Path) -> None:
    api.register(make_model(tmp_path / "seed"), "m")
    before = reg.snapshot()
    folder = make_model(tmp_path / "x", {"w.bin": b"never stored"})
    refused: list[tuple[type[Exception], Any]] = [
        (InvalidInputError, lambda: api.register(folder, "M")),
        (InvalidInputError, lambda: api.register(folder, "m", VersionInput(params={"a": {1: 2}}))),
        (
            InvalidInputError,
            lambda: api.register(folder, "m", VersionInput(metrics={"loss": float("nan")})),
        ),
        (InvalidInputError, lambda: api.register(folder, "m", VersionInput(tags={"": "x"}))),
        (InvalidInputError, lambda: api.register(folder, "m", hash_algorithm="md5")),
        (
            NotFoundError,
            lambda: api.register(folder, "m", VersionInput(lineage=[LineageInput("base", "m/9")])),
        ),
        (InvalidInputError, lambda: LineageInput("sibling", "m/1")),
        (NotFoundError, lambda: api.register(tmp_path / "absent", "m")),
        (NotFoundError, lambda: api.tag_model("nosuch", {"a": "b"})),
        (NotFoundError, lambda: api.describe_version("m/5", "x")),
    ]
    for error, attempt in refused:
        with pytest.raises(error):
            attempt()
    assert reg.snapshot() == before


# -- aliases -------------------------------------------------------------------------------


def test_alias_set_noop_rollback_and_delete(
    api: Registry, reg: RegistryEnv, tmp_path: Path
) -> None:
    _versions(api, tmp_path, "m", 3)
    first = api.set_alias("m", "prod", 2, reason="launch")
    assert first is not None
    assert (first.kind, first.from_version, first.to_version, first.generation) == (
        "set",
        None,
        2,
        1,
    )
    assert api.resolve("m@prod").version == 2
    assert api.get_version("m/2").aliases == ["prod"]

    before = reg.snapshot()
    assert api.set_alias("m", "prod", 2) is None  # no-op: no history, no audit entry
    assert api.set_alias("m", "prod", 2, expected_generation=1) is None
    assert reg.snapshot() == before

    forward = api.set_alias("m", "prod", 3, expected_generation=1)
    back = api.set_alias("m", "prod", 1, reason="bad metrics")
    assert forward is not None
    assert back is not None
    assert (forward.kind, back.kind) == ("set", "rollback")
    assert (back.from_version, back.to_version, back.generation) == (3, 1, 3)

    deleted = api.delete_alias("m", "prod", reason="retire", expected_generation=3)
    assert (deleted.kind, deleted.from_version, deleted.generation) == ("delete", 1, 4)
    state = api.get_alias("m", "prod")
    assert (state.version, state.generation) == (None, 4)
    with pytest.raises(NotFoundError):
        api.resolve("m@prod")
    with pytest.raises(NotFoundError):
        api.delete_alias("m", "prod")
    assert api.get_model("m").aliases == {}
    # The generation never resets: a compare-and-set from before the delete cannot win.
    with pytest.raises(ConflictError):
        api.set_alias("m", "prod", 2, expected_generation=0)
    again = api.set_alias("m", "prod", 2, expected_generation=4)
    assert again is not None
    assert again.generation == 5

    history = api.alias_history("m", "prod")
    assert [(e.kind, e.from_version, e.to_version, e.generation) for e in history] == [
        ("set", None, 2, 1),
        ("set", 2, 3, 2),
        ("rollback", 3, 1, 3),
        ("delete", 1, None, 4),
        ("set", None, 2, 5),
    ]
    assert [e.reason for e in history] == ["launch", "", "bad metrics", "retire", ""]
    actions = [e.action for e in api.audit_log() if e.action.startswith("alias.")]
    assert actions == ["alias.set", "alias.set", "alias.rollback", "alias.delete", "alias.set"]


def test_alias_refusals_change_nothing(api: Registry, reg: RegistryEnv, tmp_path: Path) -> None:
    _versions(api, tmp_path, "m", 2)
    api.set_alias("m", "prod", 1)
    before = reg.snapshot()
    refused: list[tuple[type[Exception], Any]] = [
        (ConflictError, lambda: api.set_alias("m", "prod", 2, expected_generation=0)),
        (ConflictError, lambda: api.set_alias("m", "prod", 2, expected_generation=2)),
        (ConflictError, lambda: api.delete_alias("m", "prod", expected_generation=2)),
        (ConflictError, lambda: api.set_alias("m", "new", 2, expected_generation=1)),
        (InvalidInputError, lambda: api.set_alias("m", "latest", 1)),
        (InvalidInputError, lambda: api.set_alias("m", "7", 1)),
        (NotFoundError, lambda: api.set_alias("m", "prod", 3)),
        (NotFoundError, lambda: api.set_alias("nosuch", "prod", 1)),
    ]
    for error, attempt in refused:
        with pytest.raises(error):
            attempt()
    assert reg.snapshot() == before
    assert len(api.alias_history("m")) == 1


def test_latest_is_the_highest_version(api: Registry, tmp_path: Path) -> None:
    api.create_model("empty")
    with pytest.raises(NotFoundError, match="no versions"):
        api.resolve("empty@latest")
    _versions(api, tmp_path, "m", 3)
    assert api.resolve("m@latest").version == 3
    assert api.resolve("models:/m@latest").version == 3


# -- stages --------------------------------------------------------------------------------


def test_at_most_one_production_the_previous_is_archived_with_history(
    api: Registry, reg: RegistryEnv, tmp_path: Path
) -> None:
    _versions(api, tmp_path, "m", 3)
    api.set_stage("m", 1, "Staging")
    api.set_stage("m", 1, Stage.PRODUCTION, reason="launch")
    events = api.set_stage("m", 2, "production", reason="v2 wins")
    assert [(e.version, e.from_stage, e.to_stage) for e in events] == [
        (1, Stage.PRODUCTION, Stage.ARCHIVED),
        (2, Stage.NONE, Stage.PRODUCTION),
    ]
    assert events[0].reason == "replaced in Production by m/2"
    stages = {v.version: v.stage for v in api.list_versions("m")}
    assert stages == {1: Stage.ARCHIVED, 2: Stage.PRODUCTION, 3: Stage.NONE}

    before = reg.snapshot()
    assert api.set_stage("m", 2, "Production") == []  # no-op: nothing recorded
    assert reg.snapshot() == before
    with pytest.raises(InvalidInputError):
        api.set_stage("m", 3, "Live")
    with pytest.raises(NotFoundError):
        api.set_stage("m", 9, "Staging")
    assert reg.snapshot() == before

    api.set_stage("m", 2, "Archived")  # leaving Production archives nothing else
    api.set_stage("m", 3, "Production")
    stages = {v.version: v.stage for v in api.list_versions("m")}
    assert stages == {1: Stage.ARCHIVED, 2: Stage.ARCHIVED, 3: Stage.PRODUCTION}
    history = [(e.version, e.from_stage.value, e.to_stage.value) for e in api.stage_history("m")]
    assert history == [
        (1, "None", "Staging"),
        (1, "Staging", "Production"),
        (1, "Production", "Archived"),
        (2, "None", "Production"),
        (2, "Production", "Archived"),
        (3, "None", "Production"),
    ]
    stage_entries = [e for e in api.audit_log() if e.action == "stage.set"]
    assert len(stage_entries) == len(history)
    assert [e.subject for e in stage_entries] == [f"m/{v}" for v, _, _ in history]


# -- download ------------------------------------------------------------------------------


def test_download_checks_every_digest_and_leaves_nothing_on_mismatch(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    """With the in-memory artefact store shipped for tests, whose bytes can be swapped."""
    metadata = open_metadata_store(reg.metadata_uri)
    store = open_artifact_store("memory://", allow_ephemeral=True)
    registry = Registry(metadata, store, actor="tester@ci")
    try:
        registry.register(make_model(tmp_path / "m"), "m")
        registry.download("m/1", tmp_path / "ok")
        assert (tmp_path / "ok" / "weights" / "part-1.bin").read_bytes() == b"\x02\x03" * 512
        key = registry.manifest("m/1").by_path()["weights/part-1.bin"].digest.hex
        store.corrupt(key, b"\x02\x03" * 511 + b"\x00\x00")  # type: ignore[attr-defined]
        with pytest.raises(DigestMismatchError):
            registry.download("m/1", tmp_path / "bad")
        assert not (tmp_path / "bad").exists()
        assert [p.name for p in tmp_path.iterdir() if ".mlprov-" in p.name] == []
        with pytest.raises(ConflictError):
            registry.download("m/1", tmp_path / "ok")
    finally:
        registry.close()
