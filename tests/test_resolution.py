"""Signed alias resolution: the statement, the client's state (rollback, freeze,
equivocation), and `pull --resolution` refusing stale answers without changing anything."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlprov.errors import (
    InvalidInputError,
    MalformedSignatureError,
    NotFoundError,
    SignatureError,
    StorageError,
    VerificationError,
)
from mlprov.serving import (
    RESOLUTION_PREDICATE_TYPE,
    Resolution,
    ResolutionState,
    registry_id_of,
    resolution_statement,
    sign_resolution,
    verify_resolution,
)
from mlprov.signing import (
    KeySigner,
    KeyTrust,
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
)
from support.registry_env import RegistryEnv, one_line_error
from support.serving_env import ServingEnv, serving_env

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


#: Public keys of the signers made here, by key hint.
_PUBLIC: dict[str, bytes] = {}


def _new_signer() -> KeySigner:
    pem = generate_private_key_pem()
    signer = KeySigner.from_pem(pem)
    _PUBLIC[signer.identity.subject] = public_key_pem(load_private_key(pem).public_key())
    return signer


@pytest.fixture(scope="module")
def key() -> KeySigner:
    return _new_signer()


def _trust(signer: KeySigner) -> KeyTrust:
    return KeyTrust(_PUBLIC[signer.identity.subject])


def _signed(
    signer: KeySigner,
    *,
    version: int = 3,
    generation: int = 5,
    issued_at: datetime = T0,
    ttl: timedelta = timedelta(minutes=5),
    digest: str = DIGEST,
    alias: str = "production",
) -> bytes:
    return sign_resolution(
        signer,
        name="credit-risk",
        alias=alias,
        version=version,
        manifest_digest=digest,
        generation=generation,
        issued_at=issued_at,
        ttl=ttl,
    )


def _resolution(
    *, generation: int, version: int, issued_at: datetime, digest: str = DIGEST
) -> Resolution:
    return Resolution(
        registry_id="key:" + "11" * 32,
        name="credit-risk",
        alias="production",
        version=version,
        manifest_digest=digest,
        generation=generation,
        issued_at=issued_at,
        expires_at=issued_at + timedelta(minutes=5),
    )


# -- the statement -------------------------------------------------------------------------


def test_a_statement_round_trips_and_its_payload_is_deterministic(key: KeySigner) -> None:
    bundle = _signed(key)
    verified = verify_resolution(bundle, _trust(key), T0 + timedelta(minutes=1))
    assert (verified.name, verified.alias, verified.version, verified.generation) == (
        "credit-risk",
        "production",
        3,
        5,
    )
    assert verified.manifest_digest == DIGEST
    assert verified.registry_id == registry_id_of(key.identity) == f"key:{key.identity.subject}"
    assert (verified.issued_at, verified.expires_at) == (T0, T0 + timedelta(minutes=5))
    assert verified.bundle == bundle
    statement = json.loads(verified.payload)
    assert statement["predicateType"] == RESOLUTION_PREDICATE_TYPE
    assert statement["subject"] == [
        {"name": "credit-risk@production", "digest": {"sha256": "ab" * 32}}
    ]
    assert statement["predicate"]["issuedAt"] == "2026-12-01T12:00:00.000000Z"
    # Same inputs, same statement bytes; the payload signed is exactly those bytes.
    again = resolution_statement(
        registry_id=verified.registry_id,
        name="credit-risk",
        alias="production",
        version=3,
        manifest_digest=DIGEST,
        generation=5,
        issued_at=T0,
        expires_at=T0 + timedelta(minutes=5),
    )
    assert again == verified.payload
    assert verify_resolution(_signed(key), _trust(key), T0).payload == verified.payload


def test_a_statement_signed_by_another_key_is_refused(key: KeySigner) -> None:
    other = _new_signer()
    with pytest.raises(SignatureError, match="wrong key"):
        verify_resolution(_signed(other), _trust(key), T0)


def test_a_tampered_predicate_is_refused(key: KeySigner) -> None:
    bundle = json.loads(_signed(key, version=3))
    envelope = bundle["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["version"] = 2
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(SignatureError):
        verify_resolution(json.dumps(bundle).encode(), _trust(key), T0)


def test_a_statement_naming_another_registry_than_its_key_is_refused(key: KeySigner) -> None:
    payload = resolution_statement(
        registry_id="key:" + "00" * 32,
        name="credit-risk",
        alias="production",
        version=3,
        manifest_digest=DIGEST,
        generation=5,
        issued_at=T0,
        expires_at=T0 + timedelta(minutes=5),
    )
    with pytest.raises(SignatureError, match="not this registry's answer"):
        verify_resolution(key.sign(payload).bundle, _trust(key), T0)


def test_another_predicate_type_or_a_malformed_predicate_is_refused(key: KeySigner) -> None:
    checkpoint = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "credit-risk@production", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://mlprov.dev/audit-checkpoint/v1",
        "predicate": {},
    }
    with pytest.raises(MalformedSignatureError, match="not a resolution statement"):
        verify_resolution(key.sign(json.dumps(checkpoint).encode()).bundle, _trust(key), T0)
    checkpoint["predicateType"] = RESOLUTION_PREDICATE_TYPE
    with pytest.raises(MalformedSignatureError, match="must hold exactly"):
        verify_resolution(key.sign(json.dumps(checkpoint).encode()).bundle, _trust(key), T0)
    with pytest.raises(MalformedSignatureError):
        verify_resolution(b"{not json", _trust(key), T0)


def test_an_expired_statement_is_a_frozen_answer(key: KeySigner) -> None:
    bundle = _signed(key, ttl=timedelta(minutes=5))
    verify_resolution(bundle, _trust(key), T0 + timedelta(minutes=4, seconds=59))
    with pytest.raises(VerificationError, match="expired") as caught:
        verify_resolution(bundle, _trust(key), T0 + timedelta(minutes=5))
    assert caught.value.exit_code == 1


def test_a_statement_from_the_future_is_refused(key: KeySigner) -> None:
    with pytest.raises(VerificationError, match="in the future"):
        verify_resolution(_signed(key, issued_at=T0 + timedelta(hours=1)), _trust(key), T0)


@pytest.mark.parametrize(
    ("ttl", "words"),
    [(timedelta(0), "more than nothing"), (timedelta(days=2), "at most 1 day")],
)
def test_a_ttl_out_of_range_is_refused(key: KeySigner, ttl: timedelta, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        _signed(key, ttl=ttl)


# -- the client's state ----------------------------------------------------------------------


def test_the_state_refuses_a_rollback_and_is_left_unchanged(tmp_path: Path) -> None:
    state = ResolutionState(tmp_path / "resolutions.json")
    newer = _resolution(generation=7, version=4, issued_at=T0 + timedelta(minutes=1))
    older = _resolution(generation=6, version=3, issued_at=T0)
    state.accept(newer, T0 + timedelta(minutes=2))
    before = (tmp_path / "resolutions.json").read_bytes()
    with pytest.raises(VerificationError, match="rollback refused") as caught:
        state.accept(older, T0 + timedelta(minutes=2))
    assert caught.value.exit_code == 1
    assert (tmp_path / "resolutions.json").read_bytes() == before
    seen = state.seen(newer.registry_id, "credit-risk", "production")
    assert seen is not None
    assert (seen.generation, seen.version) == (7, 4)


def test_the_state_refuses_one_generation_naming_two_versions(tmp_path: Path) -> None:
    state = ResolutionState(tmp_path / "s.json")
    state.accept(_resolution(generation=7, version=4, issued_at=T0), T0)
    for other in (
        _resolution(generation=7, version=5, issued_at=T0 + timedelta(seconds=1)),
        _resolution(
            generation=7, version=4, issued_at=T0 + timedelta(seconds=1), digest=OTHER_DIGEST
        ),
    ):
        with pytest.raises(VerificationError, match="already seen naming version 4"):
            state.accept(other, T0 + timedelta(seconds=2))


def test_the_state_refuses_an_older_answer_of_the_same_generation(tmp_path: Path) -> None:
    state = ResolutionState(tmp_path / "s.json")
    state.accept(_resolution(generation=7, version=4, issued_at=T0 + timedelta(minutes=1)), T0)
    # A re-issue of the same answer is fine; one issued before the last accepted is not.
    state.accept(
        _resolution(generation=7, version=4, issued_at=T0 + timedelta(minutes=2)),
        T0 + timedelta(minutes=2),
    )
    with pytest.raises(VerificationError, match="an older answer replayed"):
        state.accept(
            _resolution(generation=7, version=4, issued_at=T0 + timedelta(minutes=1)),
            T0 + timedelta(minutes=2),
        )


def test_the_state_refuses_an_expired_answer_even_a_first_one(tmp_path: Path) -> None:
    state = ResolutionState(tmp_path / "s.json")
    with pytest.raises(VerificationError, match="frozen"):
        state.accept(_resolution(generation=1, version=1, issued_at=T0), T0 + timedelta(hours=1))
    assert not (tmp_path / "s.json").exists()


def test_a_corrupt_state_file_is_refused_not_reset(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"version": 1, "resolutions": [{"name": 3}]}')
    with pytest.raises(StorageError, match="corrupt"):
        ResolutionState(path).accept(_resolution(generation=1, version=1, issued_at=T0), T0)
    assert path.read_text() == '{"version": 1, "resolutions": [{"name": 3}]}'


def test_two_processes_accepting_at_once_lose_no_update(tmp_path: Path) -> None:
    """Each process ratchets its own alias up 40 times; a read-modify-write without the lock
    would drop the other's entries or generations."""
    script = textwrap.dedent(
        """
        import sys
        from datetime import datetime, timedelta, timezone
        from mlprov.serving import Resolution, ResolutionState
        path, alias = sys.argv[1], sys.argv[2]
        t0 = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
        state = ResolutionState(__import__("pathlib").Path(path))
        for generation in range(1, 41):
            issued = t0 + timedelta(seconds=generation)
            state.accept(
                Resolution("key:" + "11" * 32, "credit-risk", alias, generation, "sha256:"
                           + "ab" * 32, generation, issued, issued + timedelta(minutes=5)),
                issued,
            )
        """
    )
    path = tmp_path / "shared" / "resolutions.json"
    runs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), alias])
        for alias in ("production", "canary")
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    document = json.loads(path.read_text())
    assert sorted((e["alias"], e["generation"]) for e in document["resolutions"]) == [
        ("canary", 40),
        ("production", 40),
    ]


# -- the registry: signing and pulling ---------------------------------------------------------


@pytest.fixture
def served(reg: RegistryEnv, tmp_path: Path) -> ServingEnv:
    return serving_env(reg, tmp_path)


def test_the_registry_signs_what_the_alias_names_now_and_writes_nothing(
    served: ServingEnv,
) -> None:
    before = served.reg.snapshot()
    registry = served.reg.registry()
    try:
        bundle = registry.signed_resolution(
            "m", "production", served.signer(), ttl=timedelta(minutes=5)
        )
        alias = registry.get_alias("m", "production")
        record = registry.get_version("m/1")
    finally:
        registry.close()
    verified = verify_resolution(bundle, served.trust(), datetime.now(timezone.utc))
    assert (verified.version, verified.generation) == (1, alias.generation)
    assert verified.manifest_digest == record.digest
    assert served.reg.snapshot() == before


def test_signing_a_missing_alias_is_not_found_and_changes_nothing(served: ServingEnv) -> None:
    before = served.reg.snapshot()
    registry = served.reg.registry()
    try:
        with pytest.raises(NotFoundError):
            registry.signed_resolution("m", "staging", served.signer(), ttl=timedelta(minutes=5))
        with pytest.raises(InvalidInputError):
            registry.signed_resolution("m", "latest", served.signer(), ttl=timedelta(minutes=5))
    finally:
        registry.close()
    assert served.reg.snapshot() == before


def _resolve_signed(served: ServingEnv, out: Path, *extra: str) -> Path:
    result = served.reg.cli(
        "resolve", "m@production", "--signed", "--key", str(served.registry_key),
        "--out", str(out), *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def _pull(
    served: ServingEnv, to: Path, resolution: Path, state: Path
) -> subprocess.CompletedProcess[str]:
    return served.reg.cli(
        "pull", "m@production", "--to", str(to), "--resolution", str(resolution),
        "--registry-key", str(served.registry_public), "--state", str(state),
    )  # fmt: skip


def test_pull_installs_what_a_fresh_resolution_names_and_refuses_a_stale_one(
    served: ServingEnv, tmp_path: Path
) -> None:
    state = tmp_path / "client" / "resolutions.json"
    first = _resolve_signed(served, tmp_path / "first.json")
    assert "/" not in first.read_text().strip()[:1]  # the bundle itself, JSON
    ok = _pull(served, tmp_path / "one", first, state)
    assert ok.returncode == 0, ok.stderr
    assert "resolution generation" in ok.stdout
    assert (tmp_path / "one" / "model.sig").is_file()
    assert served.reg.cli("check-installed", str(tmp_path / "one")).returncode == 0

    # The alias moves on; the first answer, still unexpired, is now stale.
    served.move(served.new_version(tmp_path / "v2"))
    state_before = state.read_bytes()
    before = served.reg.snapshot()
    stale = _pull(served, tmp_path / "two", first, state)
    assert stale.returncode == 1
    assert "stale resolution" in one_line_error(stale.stderr)
    assert not (tmp_path / "two").exists()
    assert state.read_bytes() == state_before
    assert served.reg.snapshot() == before

    fresh = _resolve_signed(served, tmp_path / "fresh.json")
    ok = _pull(served, tmp_path / "two", fresh, state)
    assert ok.returncode == 0, ok.stderr
    seen = json.loads(state.read_text())["resolutions"]
    assert [(e["alias"], e["version"]) for e in seen] == [("production", 2)]


def test_pull_refuses_a_replayed_older_generation_after_a_newer_one(
    served: ServingEnv, tmp_path: Path
) -> None:
    """The registry copy a pod reads may be older than what it already saw (a restored
    backup, a stale read-only mount): the state refuses the older generation."""
    state = ResolutionState(tmp_path / "client.json")
    registry = served.reg.registry()
    try:
        old = registry.signed_resolution(
            "m", "production", served.signer(), ttl=timedelta(minutes=5)
        )
        old_generation = registry.get_alias("m", "production").generation
        served.move(served.new_version(tmp_path / "v2"))
        served.move(1)  # a rollback through the gate: generation + 2, version 1 again
        new = registry.signed_resolution(
            "m", "production", served.signer(), ttl=timedelta(minutes=5)
        )
        registry.pull_resolved("m@production", tmp_path / "a", new, served.trust(), state)
        now = datetime.now(timezone.utc)
        verified_old = verify_resolution(old, served.trust(), now)
        assert verified_old.generation == old_generation
        before = state.path.read_bytes()
        with pytest.raises(VerificationError, match="rollback refused"):
            state.accept(verified_old, now)
        assert state.path.read_bytes() == before
    finally:
        registry.close()


def test_pull_refuses_an_expired_resolution_and_changes_nothing(
    served: ServingEnv, tmp_path: Path
) -> None:
    state = ResolutionState(tmp_path / "client.json")
    registry = served.reg.registry()
    try:
        bundle = registry.signed_resolution(
            "m", "production", served.signer(), ttl=timedelta(minutes=1)
        )
        later = datetime.now(timezone.utc) + timedelta(minutes=2)
        with pytest.raises(VerificationError, match="expired"):
            registry.pull_resolved(
                "m@production", tmp_path / "out", bundle, served.trust(), state, now=later
            )
    finally:
        registry.close()
    assert not (tmp_path / "out").exists()
    assert not state.path.exists()


def test_pull_resolution_failures_exit_with_their_codes_and_change_nothing(
    served: ServingEnv, tmp_path: Path
) -> None:
    resolution = _resolve_signed(served, tmp_path / "r.json")
    stranger = tmp_path / "stranger.pub"
    stranger.write_bytes(_PUBLIC[_new_signer().identity.subject])
    state = tmp_path / "state.json"
    to = tmp_path / "out"
    base = ["pull", "m@production", "--to", str(to)]
    cases = [
        (2, [*base, "--resolution", str(resolution)], "--registry-key"),
        (2, [*base, "--registry-key", str(served.registry_public)], "go with --resolution"),
        (1, [*base, "--resolution", str(resolution), "--registry-key", str(stranger),
             "--state", str(state)], "wrong key"),
        (1, ["pull", "m@canary", "--to", str(to), "--resolution", str(resolution),
             "--registry-key", str(served.registry_public), "--state", str(state)],
         "is for m@production"),
        (4, [*base, "--resolution", str(tmp_path / "missing.json"), "--registry-key",
             str(served.registry_public)], "no such file"),
    ]  # fmt: skip
    before = served.reg.snapshot()
    for code, args, words in cases:
        result = served.reg.cli(*args)
        assert result.returncode == code, (args, result.stderr)
        assert words in one_line_error(result.stderr), result.stderr
        assert not to.exists()
        assert not state.exists()
    assert served.reg.snapshot() == before


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["resolve", "m/1", "--signed", "--key", "KEY"], 2, "NAME@ALIAS"),
        (["resolve", "m@production", "--signed"], 2, "--key"),
        (["resolve", "m@production", "--signed", "--key", "KEY", "--ttl", "2d"], 2, "1 day"),
        (["resolve", "m@production", "--signed", "--key", "KEY", "--ttl", "5w"], 2, "duration"),
        (["resolve", "m@production", "--key", "KEY"], 2, "go with --signed"),
        (["resolve", "m@staging", "--signed", "--key", "KEY"], 4, "not found"),
    ],
)
def test_resolve_signed_bad_input_exits_with_its_code(
    served: ServingEnv, args: list[str], code: int, words: str
) -> None:
    before = served.reg.snapshot()
    result = served.reg.cli(*[str(served.registry_key) if a == "KEY" else a for a in args])
    assert result.returncode == code, result.stderr
    assert words in one_line_error(result.stderr)
    assert served.reg.snapshot() == before


def test_resolve_signed_prints_the_bundle_on_stdout(served: ServingEnv) -> None:
    result = served.reg.cli(
        "resolve", "m@production", "--signed", "--key", str(served.registry_key)
    )
    assert result.returncode == 0, result.stderr
    verified = verify_resolution(result.stdout.encode(), served.trust(), datetime.now(timezone.utc))
    assert verified.ref == "m@production"


def test_pull_keeps_the_state_in_the_registry_home_by_default(
    served: ServingEnv, tmp_path: Path
) -> None:
    resolution = _resolve_signed(served, tmp_path / "r.json")
    result = served.reg.cli(
        "pull", "m@production", "--to", str(tmp_path / "out"), "--resolution", str(resolution),
        "--registry-key", str(served.registry_public), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)["resolution"]
    assert (printed["alias"], printed["version"]) == ("production", 1)
    seen = json.loads((served.reg.home / "resolutions.json").read_text())["resolutions"]
    assert [(e["registryId"], e["generation"]) for e in seen] == [
        (printed["registry_id"], printed["generation"])
    ]
