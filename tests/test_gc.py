"""``mlprov gc``: only unreferenced blobs older than the grace period go, a dry run changes
nothing, it works on the file and the S3 store, and it never races a registration that
stores or reuses a blob (both orders of the two phases, an expired lease, and threads)."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mlprov.artifacts import open_artifact_store
from mlprov.errors import BlobRemovedError, ConflictError, NotFoundError, StorageError
from mlprov.registry import GcReport, Registry
from mlprov.registry.uploads import UploadedFile
from mlprov.store import open_metadata_store
from support.registry_env import RegistryEnv, execute, make_model, one_line_error
from support.s3_server import MotoServer, PausingStore, S3RegistryEnv, age, blob_path

TWO_DAYS = 2 * 24 * 3600


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _holds(reg: RegistryEnv) -> list[tuple[Any, ...]]:
    return sorted(execute(reg, "SELECT digest, state, holder, expires_at FROM blob_holds"))


@pytest.fixture
def paused(reg: RegistryEnv) -> Iterator[tuple[Registry, PausingStore]]:
    """A registry on this test's metadata store whose file store pauses where a
    registration and gc meet."""
    store = PausingStore(open_artifact_store((reg.home / "blobs").as_uri()))
    registry = Registry(open_metadata_store(reg.metadata_uri), store, actor="tester@ci")
    try:
        yield registry, store
    finally:
        registry.close()


def test_gc_removes_only_unreferenced_blobs_older_than_the_grace(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    result = reg.cli("register", str(make_model(tmp_path / "m")), "--name", "m", "--no-git")
    assert result.returncode == 0, result.stderr
    registry = reg.registry()
    try:
        referenced = sorted(f.blob for f in registry.version_files("m/1"))
        old = registry.artifacts.put_bytes(b"left by a failed registration").sha256
        young = registry.artifacts.put_bytes(b"stored a moment ago").sha256
    finally:
        registry.close()
    for digest in [*referenced, old]:
        age(blob_path(reg.home, digest), TWO_DAYS)
    # Temporary copies: one a killed registration left two days ago, one being written.
    (reg.home / "blobs" / "tmp" / "put-killed").write_bytes(b"half a file")
    age(reg.home / "blobs" / "tmp" / "put-killed", TWO_DAYS)
    (reg.home / "blobs" / "tmp" / "put-writing").write_bytes(b"in progress")

    ran = reg.cli("gc", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["staging_removed"] == 1
    assert sorted(p.name for p in (reg.home / "blobs" / "tmp").iterdir()) == ["put-writing"]
    assert report["removed"] == [{"sha256": old, "size": len(b"left by a failed registration")}]
    assert (report["blobs"], report["referenced"], report["young"], report["held"]) == (5, 3, 1, 0)
    assert report["bytes_freed"] == len(b"left by a failed registration")
    assert report["dry_run"] is False
    assert reg.snapshot()["blobs"] == sorted([*referenced, young])

    registry = reg.registry()
    try:
        entry = registry.audit_log()[-1]
        assert (entry.action, entry.subject) == ("gc.run", "artifacts")
        details = json.loads(entry.details)
        assert details["removed"] == 1
        assert details["bytes_freed"] == len(b"left by a failed registration")
        assert details["grace_seconds"] == 24 * 3600
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
    down = reg.cli("download", "m/1", "--to", str(tmp_path / "out"))
    assert down.returncode == 0, down.stderr

    text = reg.cli("gc", "--grace", "0")
    assert text.returncode == 0, text.stderr
    assert "removed 1 of 4 blob(s), 19 B; kept 3 referenced" in text.stdout
    assert reg.snapshot()["blobs"] == referenced


def test_a_dry_run_reports_and_changes_nothing(reg: RegistryEnv, tmp_path: Path) -> None:
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "m"), "m")
        orphan = registry.artifacts.put_bytes(b"orphan").sha256
    finally:
        registry.close()
    age(blob_path(reg.home, orphan), TWO_DAYS)
    before, holds = reg.snapshot(), _holds(reg)
    result = reg.cli("gc", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["removed"] == [{"sha256": orphan, "size": 6}]
    text = reg.cli("gc", "--dry-run")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("would remove 1 of 4 blob(s), 6 B")
    assert reg.snapshot() == before
    assert _holds(reg) == holds


@pytest.mark.parametrize("grace", ["5x", "-1h", "1y", ""])
def test_a_bad_grace_is_refused_and_changes_nothing(reg: RegistryEnv, grace: str) -> None:
    before = reg.snapshot()
    result = reg.cli("gc", "--grace", grace)
    assert result.returncode == 2, result.stderr
    assert "--grace" in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_a_registration_holding_a_lease_keeps_its_blob(
    paused: tuple[Registry, PausingStore], tmp_path: Path
) -> None:
    """Phase order 1: the registration has leased a blob it found stored (unreferenced,
    old) when gc runs. gc must keep it; the version then commits and reads back."""
    registry, store = paused
    data = b"weights an earlier failed registration stored"
    assert store.put_bytes(data).created
    reports: list[GcReport] = []

    def collect(digest: str) -> None:
        store.after_hold = None
        reports.append(registry.collect_garbage(timedelta(0)))

    store.after_hold = collect
    version = registry.register(make_model(tmp_path / "m", {"w.bin": data}), "m")
    [report] = reports
    assert report.held == 1
    assert report.removed == ()
    assert registry.version_files(version.ref)[0].blob == _sha(data)
    assert store.read_bytes(_sha(data)) == data
    registry.download(version.ref, tmp_path / "out")
    assert (tmp_path / "out" / "w.bin").read_bytes() == data
    # Referenced now: a later gc keeps it for that reason.
    later = registry.collect_garbage(timedelta(0))
    assert (later.removed, later.referenced) == ((), 1)


def test_a_registration_waits_while_gc_removes_the_blob_it_needs(
    paused: tuple[Registry, PausingStore], tmp_path: Path
) -> None:
    """Phase order 2: gc has claimed the blob and is deleting it when a registration of
    the same bytes arrives. The registration waits for the claim, then stores the bytes
    again: its version never names a blob that is gone."""
    registry, store = paused
    data = b"weights about to be collected"
    store.put_bytes(data)
    model = make_model(tmp_path / "m", {"w.bin": data})
    arrived = threading.Event()
    outcome: dict[str, Any] = {}
    store.before_hold = lambda digest: arrived.set()

    def register() -> None:
        try:
            outcome["version"] = registry.register(model, "m")
        except Exception as e:  # reported to the main thread
            outcome["error"] = e

    worker = threading.Thread(target=register)

    def delete(digest: str) -> None:
        worker.start()
        assert arrived.wait(60), "the registration never reached its lease"
        time.sleep(0.5)
        outcome["waiting_while_claimed"] = worker.is_alive()

    store.before_delete = delete
    report = registry.collect_garbage(timedelta(0))
    worker.join(120)
    assert not worker.is_alive()
    assert "error" not in outcome, outcome
    assert outcome["waiting_while_claimed"] is True
    assert [b.sha256 for b in report.removed] == [_sha(data)]
    version = outcome["version"]
    assert registry.version_files(version.ref)[0].blob == _sha(data)
    assert store.read_bytes(_sha(data)) == data  # stored again after gc removed it
    registry.download(version.ref, tmp_path / "out")


def test_a_lease_gc_took_over_after_it_expired_fails_the_commit(
    reg: RegistryEnv, paused: tuple[Registry, PausingStore], tmp_path: Path
) -> None:
    registry, store = paused
    data = b"weights of a registration slower than its lease"
    store.put_bytes(data)

    def expire_and_collect(digest: str) -> None:
        store.after_hold = None
        execute(reg, "UPDATE blob_holds SET expires_at = ?", "2000-01-01T00:00:00.000000Z")
        report = registry.collect_garbage(timedelta(0))
        assert [b.sha256 for b in report.removed] == [digest]

    store.after_hold = expire_and_collect
    before = reg.snapshot()["rows"]
    with pytest.raises(ConflictError, match="claimed by mlprov gc") as refused:
        registry.register(make_model(tmp_path / "m", {"w.bin": data}), "m")
    assert refused.value.exit_code == 3
    after = reg.snapshot()["rows"]
    assert after == {**before, "audit_log": before["audit_log"] + 1}  # only gc.run
    assert registry.list_models() == []


def test_gc_removing_a_blob_a_registration_read_fails_that_registration(
    reg: RegistryEnv, paused: tuple[Registry, PausingStore]
) -> None:
    """The server's registration reads each named blob back before it commits, with no
    write of its own first: it looks at what gc has claimed, then reads. A gc that claims
    and removes the blob right after that read (a blob old, unreferenced and not leased
    by an upload) makes the commit fail, exit 3, with nothing registered: the version
    never names a blob that is gone."""
    registry, store = paused
    data = b"weights stored long ago without a lease, registered only now"
    assert store.put_bytes(data).created
    reports: list[GcReport] = []

    def collect(digest: str) -> None:
        store.after_read = None
        reports.append(registry.collect_garbage(timedelta(0)))

    store.after_read = collect
    registry.create_model("m")
    before = reg.snapshot()["rows"]
    with pytest.raises(BlobRemovedError, match="claimed by mlprov gc after") as refused:
        registry.register_uploaded("m", [UploadedFile("w.bin", _sha(data), len(data))])
    assert refused.value.exit_code == 3
    assert refused.value.digests == (_sha(data),)
    [report] = reports
    assert [b.sha256 for b in report.removed] == [_sha(data)]
    assert reg.snapshot()["rows"] == {**before, "audit_log": before["audit_log"] + 1}  # gc.run
    assert registry.list_versions("m") == []


def test_gc_removing_an_inline_blob_meanwhile_makes_the_registration_store_it_again(
    paused: tuple[Registry, PausingStore],
) -> None:
    """Inline bytes are in the request: when gc removed the blob they were found stored
    as, after the registration looked and before it committed, it stores them again and
    commits (one more attempt), and the version's blob is there."""
    registry, store = paused
    data = b"small inline weights, stored long ago by a registration that failed"
    assert store.put_bytes(data).created
    reports: list[GcReport] = []

    def collect(digest: str) -> None:
        store.after_put = None
        reports.append(registry.collect_garbage(timedelta(0)))

    store.after_put = collect
    version = registry.register_uploaded(
        "m", [UploadedFile("w.bin", _sha(data), len(data))], contents={"w.bin": data}
    )
    [report] = reports
    assert [b.sha256 for b in report.removed] == [_sha(data)]
    assert registry.version_files(version.ref)[0].blob == _sha(data)
    assert store.read_bytes(_sha(data)) == data  # stored again after gc removed it


def test_an_uploaded_blob_is_leased_until_the_registration_that_names_it(
    paused: tuple[Registry, PausingStore],
) -> None:
    """A blob upload (PUT /api/v1/blobs/...) that finds the blob already stored, old and
    unreferenced, leases it: a gc between the upload and the registration, or during the
    registration's read of it, keeps it."""
    registry, store = paused
    data = b"weights stored long ago, uploaded again before registering"
    assert store.put_bytes(data).created  # stored without a lease, as by an older mlprov
    assert registry.collect_garbage(timedelta(0), dry_run=True).removed != ()
    assert not registry.store_blob([data], _sha(data)).created
    report = registry.collect_garbage(timedelta(0))
    assert (report.held, report.removed) == (1, ())
    reports: list[GcReport] = []

    def collect(digest: str) -> None:
        store.after_read = None
        reports.append(registry.collect_garbage(timedelta(0)))

    store.after_read = collect
    version = registry.register_uploaded("m", [UploadedFile("w.bin", _sha(data), len(data))])
    assert [(r.held, r.removed) for r in reports] == [(1, ())]
    assert store.read_bytes(_sha(data)) == data
    assert registry.version_files(version.ref)[0].blob == _sha(data)


def test_a_registration_waits_while_gc_is_removing_a_blob_it_names(
    paused: tuple[Registry, PausingStore],
) -> None:
    """gc has claimed the blob and is deleting it when a registration naming it arrives:
    the registration waits for the claim to go before it reads, then finds the blob gone
    (404, exit 4) and registers nothing."""
    registry, store = paused
    data = b"weights being collected"
    store.put_bytes(data)
    arrived = threading.Event()
    outcome: dict[str, Any] = {}

    def register() -> None:
        arrived.set()
        try:
            outcome["version"] = registry.register_uploaded(
                "m", [UploadedFile("w.bin", _sha(data), len(data))]
            )
        except Exception as e:  # reported to the main thread
            outcome["error"] = e

    worker = threading.Thread(target=register)

    def delete(digest: str) -> None:
        worker.start()
        assert arrived.wait(60)
        time.sleep(0.5)
        outcome["waiting_while_claimed"] = worker.is_alive()

    store.before_delete = delete
    registry.collect_garbage(timedelta(0))
    worker.join(120)
    assert outcome["waiting_while_claimed"] is True
    assert isinstance(outcome.get("error"), NotFoundError), outcome
    assert outcome["error"].exit_code == 4
    assert "is not stored; upload it first" in str(outcome["error"])


def test_registrations_racing_gc_never_leave_a_version_without_its_blob(
    paused: tuple[Registry, PausingStore], tmp_path: Path
) -> None:
    registry, store = paused
    rounds = 10
    errors: list[BaseException] = []

    def run(work: Any) -> None:
        time.sleep(random.uniform(0, 0.03))  # vary the interleaving
        try:
            work()
        except BaseException as e:  # reported below
            errors.append(e)

    for number in range(rounds):
        data = f"round {number} {uuid.uuid4().hex}".encode() * 64
        store.put_bytes(data)  # unreferenced: gc (grace 0) wants it gone
        model = make_model(tmp_path / f"m{number}", {"w.bin": data, "config.json": "{}"})
        threads = [
            threading.Thread(target=run, args=(lambda m=model: registry.register(m, "race"),)),
            threading.Thread(target=run, args=(lambda: registry.collect_garbage(timedelta(0)),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
    versions = registry.list_versions("race")
    assert len(versions) == rounds
    for version in versions:
        for stored in registry.version_files(version.ref):
            assert _sha(store.read_bytes(stored.blob)) == stored.blob
        registry.download(version.ref, tmp_path / f"out-{version.version}")


# -- S3 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


def test_gc_on_s3_removes_unreferenced_blobs_and_stale_uploads(
    reg: RegistryEnv, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"mlprov-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    sreg = S3RegistryEnv(
        home=reg.home, metadata_uri=reg.metadata_uri, artifact_uri=f"s3://{bucket}/p"
    )
    registry = sreg.registry()
    try:
        version = registry.register(make_model(tmp_path / "m"), "m")
        referenced = sorted(f.blob for f in registry.version_files(version.ref))
        orphan = registry.artifacts.put_bytes(b"orphan in the bucket").sha256
    finally:
        registry.close()
    client = moto.client()
    client.put_object(Bucket=bucket, Key="p/staging/left-by-a-killed-upload", Body=b"x")
    # An upload still sending parts (moto dates every upload's start in 2010, so only the
    # part's time can keep it).
    upload = client.create_multipart_upload(Bucket=bucket, Key="p/staging/unfinished")
    client.upload_part(
        Bucket=bucket,
        Key="p/staging/unfinished",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"z",
    )
    client.put_object(Bucket=bucket, Key="elsewhere/not-ours", Body=b"y")
    time.sleep(1.1)  # S3 times have one-second resolution

    young = sreg.cli("gc", "--json")  # the default grace: everything is too young
    assert young.returncode == 0, young.stderr
    assert json.loads(young.stdout)["removed"] == []
    ran = sreg.cli("gc", "--grace", "0", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["removed"] == [{"sha256": orphan, "size": len(b"orphan in the bucket")}]
    # Staging copies younger than an hour may be uploads in progress: kept...
    assert report["staging_removed"] == 0
    assert "p/staging/left-by-a-killed-upload" in moto.keys(bucket)
    # ... unless the caller says they are not (the API's staging_grace).
    registry = sreg.registry()
    try:
        staged = registry.collect_garbage(timedelta(0), staging_grace=timedelta(0))
    finally:
        registry.close()
    assert (staged.removed, staged.staging_removed) == ((), 2)
    assert report["store"] == f"s3://{bucket}/p"
    assert moto.keys(bucket) == sorted(
        ["elsewhere/not-ours", *(f"p/blobs/{digest}" for digest in referenced)]
    )
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    down = sreg.cli("download", "m/1", "--to", str(tmp_path / "out"))
    assert down.returncode == 0, down.stderr


def test_on_s3_the_lease_comes_before_the_existence_check(
    reg: RegistryEnv, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both phase orders on the S3 store: a blob leased by a registration is kept by gc,
    and a registration that meets gc's claim stores the bytes again after the removal."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"mlprov-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    store = PausingStore(open_artifact_store(f"s3://{bucket}/p"))
    registry = Registry(open_metadata_store(reg.metadata_uri), store, actor="tester@ci")
    try:
        kept, collected = b"kept by its lease", b"collected under the registration"
        store.put_bytes(kept)
        store.put_bytes(collected)
        reports: list[GcReport] = []

        def collect(digest: str) -> None:
            store.after_hold = None
            reports.append(registry.collect_garbage(timedelta(0)))

        store.after_hold = collect
        first = registry.register(make_model(tmp_path / "a", {"w.bin": kept}), "m")
        # gc kept the leased blob and removed the other orphan meanwhile.
        assert [b.sha256 for b in reports[0].removed] == [_sha(collected)]
        assert store.read_bytes(registry.version_files(first.ref)[0].blob) == kept

        store.put_bytes(collected)
        arrived = threading.Event()
        store.before_hold = lambda digest: arrived.set()
        outcome: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: outcome.update(
                version=registry.register(make_model(tmp_path / "b", {"w.bin": collected}), "m")
            )
        )

        def delete(digest: str) -> None:
            store.before_delete = None
            worker.start()
            assert arrived.wait(60)
            time.sleep(0.5)
            outcome["waited"] = worker.is_alive()

        store.before_delete = delete
        registry.collect_garbage(timedelta(0))
        worker.join(120)
        assert outcome["waited"] is True
        second = outcome["version"]
        assert store.read_bytes(registry.version_files(second.ref)[0].blob) == collected
        assert sorted(moto.keys(bucket)) == sorted(f"p/blobs/{_sha(d)}" for d in (kept, collected))
    finally:
        registry.close()


def test_a_gc_that_fails_half_way_audits_what_it_removed(
    reg: RegistryEnv, paused: tuple[Registry, PausingStore]
) -> None:
    registry, store = paused
    first, second = store.put_bytes(b"first orphan").sha256, store.put_bytes(b"second").sha256
    deleted: list[str] = []

    def fail_the_second(digest: str) -> None:
        if deleted:
            raise StorageError("removing blob: storage is read-only or not writable")
        deleted.append(digest)

    store.before_delete = fail_the_second
    with pytest.raises(StorageError, match="read-only"):
        registry.collect_garbage(timedelta(0))
    [gone] = deleted
    assert store.digests() == [second if gone == first else first]
    entry = registry.audit_log()[-1]
    details = json.loads(entry.details)
    assert entry.action == "gc.run"
    assert details["removed"] == 1
    assert "read-only" in details["failed"]
    assert _holds(reg) == []  # its claims were released
    store.before_delete = None
    assert len(registry.collect_garbage(timedelta(0)).removed) == 1


def test_gc_keeps_a_record_of_each_claim_for_a_day(reg: RegistryEnv) -> None:
    registry = reg.registry()
    try:
        data = b"an unreferenced blob"
        registry.store_blob([data], _sha(data))
        execute(reg, "UPDATE blob_holds SET expires_at = ?", "2000-01-01T00:00:00.000000Z")
        assert [b.sha256 for b in registry.collect_garbage(timedelta(0)).removed] == [_sha(data)]
        assert [r[0] for r in execute(reg, "SELECT digest FROM blob_removals")] == [_sha(data)]
        registry.collect_garbage(timedelta(0))
        assert len(execute(reg, "SELECT digest FROM blob_removals")) == 1  # younger than a day
        execute(reg, "UPDATE blob_removals SET at = ?", "2000-01-01T00:00:00.000000Z")
        registry.collect_garbage(timedelta(0))
        assert execute(reg, "SELECT digest FROM blob_removals") == []
    finally:
        registry.close()


def test_a_registration_older_than_half_the_claim_records_life_is_refused(
    reg: RegistryEnv,
) -> None:
    """Claim records are pruned after a day, so a watch older than half of that cannot
    be trusted to see every claim since: the commit refuses it, exit 3, writing nothing."""
    from mlprov.registry._unit import mutation
    from mlprov.registry.gc import REMOVAL_RECORDS_KEPT, check_unremoved
    from mlprov.registry.types import BlobWatch

    registry = reg.registry()
    try:
        started = time.monotonic() - REMOVAL_RECORDS_KEPT.total_seconds() / 2 - 1
        watch = BlobWatch(("a" * 64,), 0, started)
        before = reg.snapshot()

        def commit() -> None:
            with mutation(registry._context) as unit:
                unit.audit("model.create", "m", {})
                check_unremoved(unit, "m", watch)

        with pytest.raises(ConflictError, match="took longer than 12:00:00") as refused:
            commit()
        assert refused.value.exit_code == 3
        assert reg.snapshot() == before
    finally:
        registry.close()
