"""Capturing training inputs: documents, params, metrics, datasets, git, environment, run."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlprov.config import Limits
from mlprov.errors import (
    DigestMismatchError,
    InvalidInputError,
    MalformedDocumentError,
    NotFoundError,
)
from mlprov.hashing import hash_model
from mlprov.provenance import (
    LOCAL_BUILDER_ID,
    Environment,
    MetricKey,
    Package,
    RunInfo,
    capture_dataset,
    capture_environment,
    detect_git,
    flatten_params,
    load_document,
    load_metrics,
    load_params,
    normalize_metrics,
    normalize_repo_url,
    parse_dataset_spec,
    parse_metric_flag,
    start_run,
)

# -- documents --------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_json_and_yaml_give_the_same_params(tmp_path: Path) -> None:
    from_json = load_params(_write(tmp_path, "p.json", '{"optim": {"lr": 0.1, "epochs": 3}}'))
    from_yaml = load_params(_write(tmp_path, "p.yaml", "optim:\n  lr: 0.1\n  epochs: 3\n"))
    assert from_json == from_yaml == {"optim": {"lr": 0.1, "epochs": 3}}
    assert isinstance(from_yaml["optim"]["epochs"], int)


def test_empty_yaml_is_an_empty_mapping(tmp_path: Path) -> None:
    assert load_params(_write(tmp_path, "p.yml", "# nothing yet\n")) == {}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("dup.json", '{"a": 1, "a": 2}', "repeats the key 'a'"),
        ("dup.yaml", "a: 1\na: 2\n", "repeats the key 'a'"),
        ("alias.yaml", "a: &x [1, 2]\nb: *x\n", "aliases"),
        ("nan.json", '{"a": NaN}', "NaN is not a number"),
        ("nan.yaml", "a: .nan\n", "'.nan' is not a finite number"),
        ("date.yaml", "when: 2026-01-02\n", "reads as a date in YAML; quote it"),
        ("list.json", "[1, 2]", "must be a mapping, not list"),
        ("bad.json", '{"a": }', "is not valid JSON: Expecting value at line 1"),
        ("bad.yaml", "a: [1, 2\n", "is not valid YAML"),
        ("intkey.yaml", "1: one\n", "the key 1 is not text"),
        ("python.yaml", "a: !!python/object:os.system ls\n", "YAML tag"),
    ],
)
def test_bad_documents_are_refused(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(MalformedDocumentError) as raised:
        load_document(path)
    assert expected in str(raised.value)
    assert str(raised.value).startswith(str(path))
    assert "\n" not in str(raised.value)


def test_document_limits(tmp_path: Path) -> None:
    path = _write(tmp_path, "big.json", '{"a": "' + "x" * 100 + '"}')
    with pytest.raises(MalformedDocumentError, match="more than the limit of 50 bytes"):
        load_document(path, limits=Limits(max_document_bytes=50))
    deep = _write(tmp_path, "deep.json", '{"a": ' * 10 + "1" + "}" * 10)
    with pytest.raises(MalformedDocumentError, match="nests deeper than 5"):
        load_document(deep, limits=Limits(max_json_depth=5))


def test_document_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"must end in \.json, \.yaml or \.yml"):
        load_document(_write(tmp_path, "p.toml", "a = 1"))
    with pytest.raises(NotFoundError):
        load_document(tmp_path / "absent.json")


# -- params -----------------------------------------------------------------------------


def test_flatten_params() -> None:
    nested: dict[str, Any] = {
        "optim": {"lr": 0.1, "betas": [0.9, 0.99], "sched": {"kind": "cosine"}},
        "seed": 1,
        "extra": {},
    }
    assert flatten_params(nested) == {
        "extra": {},
        "optim.betas": [0.9, 0.99],
        "optim.lr": 0.1,
        "optim.sched.kind": "cosine",
        "seed": 1,
    }
    assert nested["optim"]["sched"] == {"kind": "cosine"}  # the nested form is untouched


def test_flatten_refuses_colliding_keys() -> None:
    with pytest.raises(InvalidInputError, match=r"same key 'a\.b'"):
        flatten_params({"a.b": 1, "a": {"b": 2}})


# -- metrics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("auc=0.91", ("auc", 0.91)),
        ("epochs=3", ("epochs", 3)),
        ("auc@segment=retail=0.88", ("auc[segment=retail]", 0.88)),
        ("auc@segment=retail,region=eu=0.8", ("auc[region=eu,segment=retail]", 0.8)),
        ("loss=-1e-3", ("loss", -0.001)),
    ],
)
def test_metric_flags(flag: str, expected: tuple[str, Any]) -> None:
    key, value = parse_metric_flag(flag)
    assert (key, value) == expected
    assert type(value) is type(expected[1])


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("auc", "use NAME=VALUE"),
        ("auc=high", "is not a number"),
        ("auc=nan", "not a finite number"),
        ("auc=inf", "not a finite number"),
        ("auc@segment=0.8", "invalid subgroup"),
        ("auc@a=1,a=2=0.8", "a factor appears twice"),
        ("a[b]=1", "invalid metric name"),
    ],
)
def test_bad_metric_flags(flag: str, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        parse_metric_flag(flag)


def test_metric_key_round_trip() -> None:
    for text in ("auc", "auc[segment=retail]", "top 1[region=eu,segment=retail]"):
        assert str(MetricKey.parse(text)) == text
    key = MetricKey.parse("f1[segment=retail,region=eu]")
    assert key.slice == (("region", "eu"), ("segment", "retail"))
    assert key.slice_text == "region=eu,segment=retail"


def test_metrics_file_with_subgroups(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "metrics.yaml",
        "auc: 0.91\nsubgroups:\n  segment=retail:\n    auc: 0.88\n    f1: 0.6\n"
        "  region=eu,segment=retail:\n    auc: 0.87\n",
    )
    assert load_metrics(path) == {
        "auc": 0.91,
        "auc[region=eu,segment=retail]": 0.87,
        "auc[segment=retail]": 0.88,
        "f1[segment=retail]": 0.6,
    }


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"auc[segment=retail]": 0.8, "subgroups": {"segment=retail": {"auc": 0.8}}}, "twice"),
        ({"auc": "high"}, "must be a number"),
        ({"auc": True}, "must be a number"),
        ({"auc": float("nan")}, "cannot represent"),
        ({"subgroups": [1]}, "must map"),
    ],
)
def test_bad_metrics(metrics: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        normalize_metrics(metrics)


# -- datasets ---------------------------------------------------------------------------


def test_local_dataset_file_and_folder(tmp_path: Path) -> None:
    file = tmp_path / "train.csv"
    file.write_bytes(b"a,b\n1,2\n")
    ref = capture_dataset("train", file)
    # One file: its own SHA-256, what sha256sum prints (and what a remote URI's digest means).
    assert ref.digest == "sha256:" + hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert ref.uri == file.resolve().as_uri()
    assert ref.digest_of == "file"
    assert capture_dataset("train", file, digest=ref.digest) == ref
    blake2b = "blake2b:" + hashlib.blake2b(b"a,b\n1,2\n").hexdigest()
    assert capture_dataset("train", file, digest=blake2b).digest == blake2b

    folder = tmp_path / "shards"
    (folder / "part").mkdir(parents=True)
    (folder / "part" / "0.parquet").write_bytes(b"zero")
    (folder / "1.parquet").write_bytes(b"one")
    ref = capture_dataset("shards", folder.as_uri())
    # A folder: the manifest digest, as for a model; the URI ends in "/" to say so.
    assert ref.digest == str(hash_model(folder).digest)
    assert ref.uri == folder.resolve().as_uri() + "/"
    assert ref.digest_of == "manifest"
    again = capture_dataset("shards", str(folder), digest=ref.digest)
    assert again == ref


# What mlprov recorded for a one-file dataset before: the manifest root over one file.
_ONE_FILE_MANIFEST_DIGEST = "sha256:" + hashlib.sha256(hashlib.sha256(b"x").digest()).hexdigest()


@pytest.mark.parametrize(
    ("digest", "words"),
    [
        pytest.param("sha256:" + "0" * 64, "its file digest (what sha256sum prints)", id="wrong"),
        pytest.param(_ONE_FILE_MANIFEST_DIGEST, "expected " + _ONE_FILE_MANIFEST_DIGEST, id="old"),
    ],
)
def test_local_dataset_with_a_wrong_digest(tmp_path: Path, digest: str, words: str) -> None:
    file = tmp_path / "train.csv"
    file.write_bytes(b"x")
    with pytest.raises(DigestMismatchError) as raised:
        capture_dataset("train", file, digest=digest)
    assert raised.value.exit_code == 1
    assert words in str(raised.value)


def test_remote_dataset_needs_a_digest() -> None:
    with pytest.raises(InvalidInputError, match="is remote and cannot be hashed here"):
        capture_dataset("train", "s3://bucket/train/")
    ref = capture_dataset("train", "s3://bucket/train/", digest="sha256:" + "AB" * 32)
    assert ref.digest == "sha256:" + "ab" * 32


def test_missing_local_dataset() -> None:
    with pytest.raises(NotFoundError):
        capture_dataset("train", "/nonexistent/train.csv")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train=./data", ("train", "./data", None)),
        ("train=s3://b/k@sha256:" + "ab" * 32, ("train", "s3://b/k", "sha256:" + "ab" * 32)),
        ("t=ssh://git@host/repo", ("t", "ssh://git@host/repo", None)),
    ],
)
def test_dataset_specs(text: str, expected: tuple[str, str, str | None]) -> None:
    assert parse_dataset_spec(text) == expected


# -- git --------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "train.py").write_text("print('train')\n", encoding="utf-8")
    (root / ".gitignore").write_text("outputs/\n", encoding="utf-8")
    _git(root, "add", "train.py", ".gitignore")
    _git(root, "commit", "-q", "-m", "first")
    _git(
        root,
        "remote",
        "add",
        "origin",
        "https://oauth2:glpat-SECRET@gitlab.example.com/ml/repo.git",
    )
    return root


def test_git_clean_checkout(repo: Path) -> None:
    (repo / "outputs").mkdir()
    (repo / "outputs" / "model.bin").write_bytes(b"ignored")
    info = detect_git(repo / "outputs")
    assert info is not None
    assert info.commit == _git(repo, "rev-parse", "HEAD")
    assert len(info.commit) == 40
    assert info.dirty is False
    assert info.repo_url == "https://gitlab.example.com/ml/repo.git"


def test_git_dirty_checkout(repo: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n", encoding="utf-8")
    info = detect_git(repo)
    assert info is not None
    assert info.dirty is True


def test_git_untracked_file(repo: Path) -> None:
    (repo / "notes.txt").write_text("new\n", encoding="utf-8")
    assert detect_git(repo) is not None
    assert detect_git(repo).dirty is True  # type: ignore[union-attr]
    assert detect_git(repo, include_untracked=False).dirty is False  # type: ignore[union-attr]


def test_git_without_remote(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    _git(root, "init", "-q")
    assert detect_git(root) is None  # no commit yet
    (root / "a").write_text("a", encoding="utf-8")
    _git(root, "add", "a")
    _git(root, "commit", "-q", "-m", "a")
    info = detect_git(root)
    assert info is not None
    assert info.repo_url is None
    assert info.dirty is False


def test_not_a_repository_and_git_absent(tmp_path: Path, repo: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert detect_git(plain) is None
    assert detect_git(repo, git=str(tmp_path / "no-such-git")) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://ghp_abc@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://github.com/o/r.git?token=x#frag", "https://github.com/o/r.git"),
        ("ssh://git@github.com:2222/o/r.git", "ssh://github.com:2222/o/r.git"),
        ("git@github.com:o/r.git", "ssh://github.com/o/r.git"),
        ("github.com:o/r.git", "ssh://github.com/o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
        ("file:///srv/git/r.git", "file:///srv/git/r.git"),
    ],
)
def test_repository_urls_lose_credentials(url: str, expected: str) -> None:
    assert normalize_repo_url(url) == expected


# -- environment ------------------------------------------------------------------------


def test_environment_is_sorted_normalised_and_digested() -> None:
    env = Environment.of([("Scikit_Learn", "1.5"), ("numpy", "2.0"), ("scikit-learn", "1.5")])
    assert env.packages == (Package("numpy", "2.0"), Package("scikit-learn", "1.5"))
    assert env.lock_text == "numpy==2.0\nscikit-learn==1.5\n"
    assert env.digest.hex == hashlib.sha256(b"numpy==2.0\nscikit-learn==1.5\n").hexdigest()
    assert Environment.of({"numpy": "2.0", "scikit-learn": "1.5"}).digest == env.digest


def test_environment_refuses_two_versions_of_one_package() -> None:
    with pytest.raises(InvalidInputError, match="listed as 1 and 2"):
        Environment.of([("numpy", "1"), ("NumPy", "2")])


def test_capture_environment_lists_installed_distributions() -> None:
    env = capture_environment()
    versions = {p.name: p.version for p in env.packages}
    assert versions["pydantic"] == importlib.metadata.version("pydantic")
    assert versions["pyyaml"] == importlib.metadata.version("PyYAML")
    assert versions["mlprov"] == importlib.metadata.version("mlprov")
    names = [p.name for p in env.packages]
    assert names == sorted(set(names))


def test_capture_environment_from_a_given_path(tmp_path: Path) -> None:
    for name, version in (("alpha_pkg", "1.0"), ("beta", "2.0")):
        info = tmp_path / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
    env = capture_environment([str(tmp_path)])
    assert env.lock_text == "alpha-pkg==1.0\nbeta==2.0\n"


# -- run --------------------------------------------------------------------------------


def test_run_info(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPROV_BUILDER_ID", raising=False)
    started = datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=timezone.utc)
    run = start_run(at=started)
    assert run.builder_id == LOCAL_BUILDER_ID
    assert run.started_on == "2026-01-02T03:04:05Z"
    assert len(run.run_id) == 36
    done = run.finish(started + timedelta(hours=1))
    assert done.finished_on == "2026-01-02T04:04:05Z"
    monkeypatch.setenv("MLPROV_BUILDER_ID", "https://ci.example.com/builder")
    assert start_run(run_id="r1").builder_id == "https://ci.example.com/builder"


def test_run_times_are_checked() -> None:
    with pytest.raises(InvalidInputError, match=r"finished .* before it started"):
        RunInfo("r", "b", "2026-01-02T03:00:00Z", "2026-01-02T02:00:00Z")
    with pytest.raises(InvalidInputError, match="no time zone"):
        RunInfo("r", "b", "2026-01-02T03:00:00")
    offset = RunInfo("r", "b", "2026-01-02T05:00:00+02:00")
    assert offset.started_on == "2026-01-02T03:00:00Z"
