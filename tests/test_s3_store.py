"""The S3 artefact store against a real S3 API server process on loopback (moto's
server): registration, download, pull and deep verification on both metadata backends,
multipart uploads and copies, an object swapped in the bucket, and storage failures that
are one line, exit 5, and write nothing."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlprov.errors import ConflictError, NotFoundError
from support.gate_env import gate_env
from support.registry_env import RegistryEnv, make_model, one_line_error
from support.s3_server import MotoServer, S3RegistryEnv, free_port

PREFIX = "team/models"
SIGNED_ONLY = "- signatures: {count: 1, signers: [trainer]}\n"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The AWS environment of this test points at the moto server (CLI processes
    inherit it), with fake credentials."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    return moto


@pytest.fixture
def sreg(reg: RegistryEnv, s3: MotoServer) -> S3RegistryEnv:
    bucket = f"mlprov-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    return S3RegistryEnv(
        home=reg.home, metadata_uri=reg.metadata_uri, artifact_uri=f"s3://{bucket}/{PREFIX}"
    )


def _bucket(env: S3RegistryEnv) -> str:
    return env.artifact_uri.removeprefix("s3://").partition("/")[0]


def _blob_key(sha256: str) -> str:
    return f"{PREFIX}/blobs/{sha256}"


def test_register_download_pull_and_verify_on_s3(
    sreg: S3RegistryEnv, s3: MotoServer, tmp_path: Path
) -> None:
    env = gate_env(sreg, tmp_path)
    env.apply(SIGNED_ONLY)
    number = env.sign_version("m", tmp_path / "a")
    plain = sreg.cli("register", str(make_model(tmp_path / "plain")), "--name", "m", "--no-git")
    assert plain.returncode == 0, plain.stderr
    keys = s3.keys(_bucket(sreg))
    files = [tmp_path / "a" / "w.bin", *sorted((tmp_path / "plain").rglob("*.bin"))]
    files.append(tmp_path / "plain" / "config.json")
    expected = {_blob_key(hashlib.sha256(f.read_bytes()).hexdigest()) for f in files}
    assert set(keys) == expected  # the blobs, under the prefix; no staging object left

    deep = sreg.cli("verify", f"m/{number}", "--deep")
    assert deep.returncode == 0, deep.stderr
    out = tmp_path / "out"
    downloaded = sreg.cli("download", "m/2", "--to", str(out))
    assert downloaded.returncode == 0, downloaded.stderr
    for source in (tmp_path / "plain").rglob("*"):
        if source.is_file():
            relative = source.relative_to(tmp_path / "plain")
            assert (out / relative).read_bytes() == source.read_bytes()
    registry = sreg.registry()
    try:
        registry.set_alias("m", "production", number)
    finally:
        registry.close()
    pulled = sreg.cli("pull", "m@production", "--to", str(tmp_path / "served"))
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "served" / "w.bin").read_bytes() == (tmp_path / "a" / "w.bin").read_bytes()


def test_a_large_file_is_uploaded_and_copied_in_parts(
    sreg: S3RegistryEnv, s3: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 5 MiB is the smallest part S3 (and moto) accepts; the file needs three parts.
    monkeypatch.setenv("MLPROV_S3_PART_SIZE", "5MiB")
    monkeypatch.setenv("MLPROV_S3_COPY_THRESHOLD", "5MiB")
    model = tmp_path / "big"
    model.mkdir()
    data = os.urandom(12 * 1024 * 1024 + 3)
    (model / "weights.bin").write_bytes(data)
    registry = sreg.registry()
    try:
        assert registry.artifacts.part_size == 5 * 1024 * 1024
        version = registry.register(model, "big")
        [stored] = registry.version_files(version.ref)
        assert stored.blob == hashlib.sha256(data).hexdigest()
        assert registry.artifacts.read_bytes(stored.blob) == data
        again = registry.register(model, "big")  # the same bytes: no second blob
        assert registry.version_files(again.ref)[0].blob == stored.blob
    finally:
        registry.close()
    head = s3.client().head_object(Bucket=_bucket(sreg), Key=_blob_key(stored.blob))
    # A multipart object's ETag is "<md5 of the part md5s>-<parts>": copied in 3 parts.
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    assert head["ContentLength"] == len(data)
    assert s3.keys(_bucket(sreg)) == [_blob_key(stored.blob)]
    uploads = s3.client().list_multipart_uploads(Bucket=_bucket(sreg))
    assert not uploads.get("Uploads")
    out = tmp_path / "out"
    result = sreg.cli("download", "big/1", "--to", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "weights.bin").read_bytes() == data


def test_an_object_swapped_in_the_bucket_is_detected_on_every_read(
    sreg: S3RegistryEnv, s3: MotoServer, tmp_path: Path
) -> None:
    env = gate_env(sreg, tmp_path)
    env.apply(SIGNED_ONLY)
    number = env.sign_version("m", tmp_path / "a")
    registry = sreg.registry()
    try:
        registry.set_alias("m", "production", number)
        [stored] = registry.version_files(f"m/{number}")
    finally:
        registry.close()
    s3.client().put_object(
        Bucket=_bucket(sreg), Key=_blob_key(stored.blob), Body=b"swapped weights"
    )
    actual = hashlib.sha256(b"swapped weights").hexdigest()
    before = sreg.snapshot()
    for args in (
        ["verify", f"m/{number}", "--deep"],
        ["download", f"m/{number}", "--to", str(tmp_path / "down")],
        ["pull", "m@production", "--to", str(tmp_path / "served")],
    ):
        result = sreg.cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        line = one_line_error(result.stderr)
        assert "w.bin" in line, line
        assert f"got sha256:{actual}" in line, line
    assert not (tmp_path / "down").exists()
    assert not (tmp_path / "served").exists()
    assert sreg.snapshot() == before


def test_an_export_streams_s3_blobs_and_a_swapped_object_fails_it(
    sreg: S3RegistryEnv, s3: MotoServer, tmp_path: Path
) -> None:
    # S3 blobs are not local files: export streams them through the store's checked
    # reads (the kernel-copy path is for file stores), with the same archive layout.
    import tarfile

    from mlprov.errors import DigestMismatchError

    env = gate_env(sreg, tmp_path)
    env.apply(SIGNED_ONLY)
    number = env.sign_version("m", tmp_path / "a")
    weights = (tmp_path / "a" / "w.bin").read_bytes()
    sha256 = hashlib.sha256(weights).hexdigest()
    registry = sreg.registry()
    try:
        assert registry.artifacts.local_file(sha256) is None
        registry.export(f"m/{number}", tmp_path / "out.tar", env.signer("trainer"))
        with tarfile.open(tmp_path / "out.tar") as tar:
            member = tar.extractfile(f"mlprov-archive/blobs/{sha256}")
            assert member is not None
            assert member.read() == weights
        s3.client().put_object(Bucket=_bucket(sreg), Key=_blob_key(sha256), Body=b"swapped")
        with pytest.raises(DigestMismatchError, match=sha256):
            registry.export(f"m/{number}", tmp_path / "again.tar", env.signer("trainer"))
    finally:
        registry.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "again.tar" in p.name) == []


def test_a_missing_object_is_not_found(sreg: S3RegistryEnv, s3: MotoServer, tmp_path: Path) -> None:
    result = sreg.cli("register", str(make_model(tmp_path / "m")), "--name", "m", "--no-git")
    assert result.returncode == 0, result.stderr
    registry = sreg.registry()
    try:
        blob = registry.version_files("m/1")[0].blob
        s3.client().delete_object(Bucket=_bucket(sreg), Key=_blob_key(blob))
        with pytest.raises(NotFoundError, match="missing from the artefact store"):
            registry.artifacts.read_bytes(blob)
    finally:
        registry.close()
    down = sreg.cli("download", "m/1", "--to", str(tmp_path / "out"))
    assert down.returncode == 4, down.stderr
    assert blob in one_line_error(down.stderr)
    assert not (tmp_path / "out").exists()


def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")


def _unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")


def _override_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLPROV_S3_ENDPOINT_URL wins over the AWS variables.
    monkeypatch.setenv("MLPROV_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize(
    ("breakage", "bucket", "words"),
    [
        (None, "no-such-bucket-here", "bucket 'no-such-bucket-here' does not exist"),
        (_no_credentials, None, "no AWS credentials found"),
        (_unreachable, None, "cannot reach the S3 endpoint"),
        (_override_unreachable, None, "cannot reach the S3 endpoint"),
    ],
    ids=["no bucket", "no credentials", "endpoint unreachable", "endpoint override"],
)
def test_a_storage_failure_is_one_line_exit_5_and_writes_nothing(
    sreg: S3RegistryEnv,
    s3: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    breakage: object,
    bucket: str | None,
    words: str,
) -> None:
    seeded = sreg.cli("register", str(make_model(tmp_path / "seed")), "--name", "m", "--no-git")
    assert seeded.returncode == 0, seeded.stderr
    before = sreg.snapshot()
    keys = s3.keys(_bucket(sreg))
    if callable(breakage):
        breakage(monkeypatch)
    broken = S3RegistryEnv(
        home=sreg.home,
        metadata_uri=sreg.metadata_uri,
        artifact_uri=f"s3://{bucket}/{PREFIX}" if bucket else sreg.artifact_uri,
    )
    model = make_model(tmp_path / "new", {"new.bin": b"new bytes " * 100})
    result = broken.cli("register", str(model), "--name", "m", "--no-git", timeout=180)
    assert result.returncode == 5, result.stderr
    assert words in one_line_error(result.stderr)
    monkeypatch.undo()
    for name, value in s3.env().items():
        os.environ[name] = value
    assert sreg.snapshot() == before
    assert s3.keys(_bucket(sreg)) == keys


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("s3:///prefix", "names no bucket"),
        ("s3://Bad_Bucket/p", "not valid"),
        ("s3://bucket/a/../b", "plain key path"),
    ],
)
def test_a_malformed_s3_uri_is_a_config_error(reg: RegistryEnv, uri: str, words: str) -> None:
    before = reg.snapshot()
    broken = S3RegistryEnv(home=reg.home, metadata_uri=reg.metadata_uri, artifact_uri=uri)
    result = broken.cli("models", "list")
    assert result.returncode == 2, result.stderr
    assert words in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_part_sizes_outside_what_s3_accepts_are_refused(
    sreg: S3RegistryEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in ("1MiB", "6GiB", "lots"):
        monkeypatch.setenv("MLPROV_S3_PART_SIZE", value)
        result = sreg.cli("models", "list", "--json")
        assert result.returncode == 2, result.stderr
        assert "MLPROV_S3_PART_SIZE" in one_line_error(result.stderr)
    monkeypatch.setenv("MLPROV_S3_PART_SIZE", "8MiB")
    ok = sreg.cli("models", "list", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == []


def test_credentials_the_server_refuses_are_one_line_exit_5_and_write_nothing(
    reg: RegistryEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = MotoServer(tmp_path / "strict-moto.log", checks_credentials=True)
    try:
        for name, value in strict.env().items():
            monkeypatch.setenv(name, value)  # keys this server does not know
        env = S3RegistryEnv(
            home=reg.home, metadata_uri=reg.metadata_uri, artifact_uri="s3://guarded/p"
        )
        before = reg.snapshot()
        result = env.cli("register", str(make_model(tmp_path / "m")), "--name", "m", "--no-git")
        assert result.returncode == 5, result.stderr
        line = one_line_error(result.stderr)
        assert "access to s3://guarded/p denied" in line, line
        assert "check the AWS credentials" in line
        assert reg.snapshot() == before
    finally:
        strict.stop()


def test_a_store_aborted_after_its_upload_leaves_nothing_in_the_bucket(
    sreg: S3RegistryEnv, s3: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROV_S3_PART_SIZE", "5MiB")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    seen: list[str] = []

    def refuse(digest: str) -> None:
        seen.append(digest)
        raise ConflictError("refused by the caller's hold")

    registry = sreg.registry()
    try:
        with pytest.raises(ConflictError, match="refused"):
            registry.artifacts.put_file(big, hold=refuse)
    finally:
        registry.close()
    assert seen == [hashlib.sha256(big.read_bytes()).hexdigest()]
    assert s3.keys(_bucket(sreg)) == []  # neither the blob nor its staging object
    assert not s3.client().list_multipart_uploads(Bucket=_bucket(sreg)).get("Uploads")
