"""OMS v1.0 shard serialization, --ignore-unsigned-files, and the spec's relaxations.

Shards (OMS v1.0 section 6.3.2): ``mlprov sign --shard-size`` writes ``"path:start:end"``
resources with an integer ``shard_size``; ``mlprov verify`` checks them; both directions
interoperate with the real ``model_signing`` 1.1 library (its CLI cannot shard).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlprov import verify as api_verify
from mlprov.cli import main
from mlprov.errors import InvalidInputError, MalformedDocumentError
from mlprov.hashing import hash_shards, list_model_files
from mlprov.signing import (
    KeySigner,
    KeyTrust,
    inspect_signature,
    parse_statement,
    read_signature_file,
    sign_model,
    verify_model,
)
from support.signing import CliResult, Keys, make_model, one_error_line

Cli = Callable[..., CliResult]


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _statement(bundle: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"])
    )
    return value


def _signer(keys: Keys) -> KeySigner:
    return KeySigner.from_pem(keys.p256.private.read_bytes())


def _trust(keys: Keys) -> KeyTrust:
    return KeyTrust(keys.p256.public.read_bytes())


@pytest.fixture
def big_model(tmp_path: Path) -> Path:
    """A folder with a 2,500-byte file, a colon in a name, a small file and an empty one."""
    return make_model(
        tmp_path / "big",
        {
            "weights.bin": bytes(range(250)) * 10,
            "odd:name:1:2": b"colons",
            "config.json": b"{}",
            "empty": b"",
        },
    )


# --- signing --------------------------------------------------------------------------------


def test_sign_with_shard_size_writes_the_spec_layout(keys: Keys, big_model: Path, cli: Cli) -> None:
    result = cli("sign", big_model, "--key", keys.p256.private, "--shard-size", "1000", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert (out["files"], out["shards"], out["shard_size"]) == (3, 5, 1000)
    statement = _statement((big_model / "model.sig").read_bytes())
    serialization = statement["predicate"]["serialization"]
    assert serialization["method"] == "shards"
    assert serialization["shard_size"] == 1000
    assert type(serialization["shard_size"]) is int
    resources = statement["predicate"]["resources"]
    assert [r["name"] for r in resources] == [
        "config.json:0:2",
        "odd:name:1:2:0:6",
        "weights.bin:0:1000",
        "weights.bin:1000:2000",
        "weights.bin:2000:2500",
    ]
    data = (big_model / "weights.bin").read_bytes()
    assert resources[3]["digest"] == hashlib.sha256(data[1000:2000]).hexdigest()
    # model_signing 1.1 compares this algorithm name (docs/adr/0012).
    assert {r["algorithm"] for r in resources} == {"sha256-sharded-1000"}
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    assert statement["subject"][0]["digest"]["sha256"] == root
    assert cli("verify", big_model, "--key", keys.p256.public).code == 0


def test_parallel_shard_hashing_matches_one_worker_and_hashlib(big_model: Path) -> None:
    files = list_model_files(big_model)
    one = hash_shards(files, "sha256", 700, workers=1)
    two = hash_shards(files, "sha256", 700, workers=2)
    assert one == two
    data = (big_model / "weights.bin").read_bytes()
    entry = one.by_path()["weights.bin:2100:2500"]
    assert entry.digest.hex == hashlib.sha256(data[2100:2500]).hexdigest()


@pytest.mark.parametrize("bad", ["0", "-5", "many"])
def test_a_bad_shard_size_is_refused(keys: Keys, big_model: Path, cli: Cli, bad: str) -> None:
    before = _tree(big_model)
    result = cli("sign", big_model, "--key", keys.p256.private, "--shard-size", bad)
    assert result.code == 2
    assert "--shard-size" in one_error_line(result.err)
    assert _tree(big_model) == before


def test_too_many_shards_are_refused_before_hashing(keys: Keys, big_model: Path) -> None:
    from dataclasses import replace

    signer = _signer(keys)
    with pytest.raises(InvalidInputError, match="choose a larger --shard-size"):
        sign_model(
            big_model, signer, shard_size=1, limits=replace(signer.limits, max_manifest_files=100)
        )
    assert not (big_model / "model.sig").exists()


def test_shard_size_with_name_is_refused(
    keys: Keys, big_model: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MLPROV_HOME", str(home))
    before = _tree(big_model)
    result = cli(
        "sign", big_model, "--key", keys.p256.private, "--shard-size", "1000", "--name", "m"
    )
    assert result.code == 2
    line = one_error_line(result.err)
    assert "sharded manifests cannot be registered yet" in line
    assert _tree(big_model) == before
    assert not home.exists() or not any(home.rglob("*.db"))


# --- verifying ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda m: (m / "weights.bin").write_bytes(b"\x00" * 2500),
            "weights.bin:0:1000",
            id="tampered",
        ),
        pytest.param(
            lambda m: (m / "weights.bin").write_bytes((m / "weights.bin").read_bytes() + b"x"),
            "its size is not the one signed",
            id="appended",
        ),
        pytest.param(
            lambda m: (m / "config.json").unlink(),
            "'config.json' is signed but missing",
            id="missing",
        ),
        pytest.param(
            lambda m: (m / "new.bin").write_bytes(b"n"),
            "'new.bin' is in the model but not signed",
            id="added",
        ),
    ],
)
def test_shard_verification_fails_on_any_change(
    keys: Keys, big_model: Path, cli: Cli, change: Callable[[Path], object], message: str
) -> None:
    assert (
        cli("sign", big_model, "--key", keys.p256.private, "--shard-size", "1000", "-q").code == 0
    )
    change(big_model)
    before = _tree(big_model)
    result = cli("verify", big_model, "--key", keys.p256.public)
    assert result.code == 1
    assert message in one_error_line(result.err)
    assert _tree(big_model) == before


def _resign(keys: Keys, statement: dict[str, Any]) -> bytes:
    payload = json.dumps(statement).encode()
    return _signer(keys).sign(payload).bundle


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param({"shard_size": 1000.5}, "is not a positive integer", id="fractional-float"),
        pytest.param({"shard_size": 0}, "is not a positive integer", id="zero"),
        pytest.param({"shard_size": True}, "is not a positive integer", id="bool"),
        pytest.param({"shard_size": None}, "is not a positive integer", id="missing"),
        pytest.param({"shard_size": 500}, "does not continue the consecutive", id="other-size"),
    ],
)
def test_malformed_shard_statements_are_refused(
    keys: Keys, big_model: Path, edit: dict[str, Any], message: str
) -> None:
    statement = _statement(
        sign_model(big_model, _signer(keys), shard_size=1000, write=False).bundle
    )
    statement["predicate"]["serialization"].update(edit)
    if edit.get("shard_size", 0) is None:
        del statement["predicate"]["serialization"]["shard_size"]
    for resource in statement["predicate"]["resources"]:
        resource["algorithm"] = "sha256"
    with pytest.raises(MalformedDocumentError, match=message):
        parse_statement(json.dumps(statement).encode())


def test_shard_statement_variants_of_the_reference_tool_and_the_spec_are_accepted(
    keys: Keys, big_model: Path
) -> None:
    bundle = sign_model(big_model, _signer(keys), shard_size=1000, write=False).bundle
    statement = _statement(bundle)
    # model_signing 1.1 writes shard_size through a protobuf Struct: a float.
    statement["predicate"]["serialization"]["shard_size"] = 1000.0
    # The spec's algorithm is plain hash_type; resources in the spec's string order.
    resources = statement["predicate"]["resources"]
    for resource in resources:
        resource["algorithm"] = "sha256"
    resources.sort(key=lambda r: r["name"])
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources))
    statement["subject"][0]["digest"]["sha256"] = root.hexdigest()
    report = verify_model(big_model, _resign(keys, statement), _trust(keys))
    assert report.passed, report.error


@pytest.mark.parametrize("name", [".", "weights.bin"], ids=["reference-dot", "spec-basename"])
def test_a_single_file_shard_signature_names_the_file_either_way(
    keys: Keys, tmp_path: Path, name: str
) -> None:
    model = tmp_path / "weights.bin"
    model.write_bytes(b"w" * 2500)
    bundle = sign_model(model, _signer(keys), shard_size=1000, write=False).bundle
    statement = _statement(bundle)
    assert statement["predicate"]["resources"][0]["name"] == ".:0:1000"
    for resource in statement["predicate"]["resources"]:
        resource["name"] = resource["name"].replace(".", name, 1)
    report = verify_model(model, _resign(keys, statement), _trust(keys))
    assert report.passed, report.error
    model.write_bytes(b"w" * 2499 + b"x")
    assert not verify_model(model, _resign(keys, statement), _trust(keys)).passed


def test_a_tiny_signed_shard_size_fails_fast(keys: Keys, tmp_path: Path) -> None:
    # A hostile signer claims 1-byte shards over a 64 MiB file: refused from the sizes.
    model = tmp_path / "m"
    model.mkdir()
    with open(model / "big.bin", "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    statement = _statement(
        sign_model(
            make_model(tmp_path / "small", {"big.bin": b"ab"}),
            _signer(keys),
            shard_size=1,
            write=False,
        ).bundle
    )
    report = verify_model(model, _resign(keys, statement), _trust(keys))
    assert not report.passed
    assert "give 67108864 shards of 1 bytes, the signature lists 2" in str(report.error)


def test_model_signing_verifies_mlprov_shard_signatures(
    keys: Keys, tmp_path: Path, cli: Cli
) -> None:
    # model_signing 1.1 splits shard names on every colon, so no colon in these names.
    big_model = make_model(tmp_path / "m", {"weights.bin": bytes(range(250)) * 10, "c": b"{}"})
    verifying = pytest.importorskip("model_signing.verifying")
    assert (
        cli("sign", big_model, "--key", keys.p256.private, "--shard-size", "1000", "-q").code == 0
    )
    config = verifying.Config().use_elliptic_key_verifier(public_key=keys.p256.public)
    config.verify(big_model, big_model / "model.sig")
    (big_model / "weights.bin").write_bytes(b"\x00" * 2500)
    with pytest.raises(ValueError, match="Hash mismatch"):
        config.verify(big_model, big_model / "model.sig")


def test_mlprov_verifies_model_signing_shard_signatures(
    keys: Keys, tmp_path: Path, cli: Cli
) -> None:
    signing = pytest.importorskip("model_signing.signing")
    hashing = pytest.importorskip("model_signing.hashing")
    model = make_model(tmp_path / "ref", {"weights.bin": bytes(range(250)) * 10, "a/b.txt": b"b"})
    signature = tmp_path / "ref.sig"
    config = signing.Config().use_elliptic_key_signer(private_key=keys.p256.private)
    config.set_hashing_config(hashing.Config().use_shard_serialization(shard_size=1000))
    config.sign(model, signature)
    serialization = _statement(signature.read_bytes())["predicate"]["serialization"]
    assert serialization["shard_size"] == 1000.0  # the reference's float
    result = cli("verify", model, "--key", keys.p256.public, "--signature", signature)
    assert result.code == 0, result.err
    (model / "weights.bin").write_bytes(b"\x01" * 2500)
    result = cli("verify", model, "--key", keys.p256.public, "--signature", signature)
    assert result.code == 1
    assert "does not match its signed digest" in one_error_line(result.err)


def test_shard_bundles_meet_the_oms_schemas_but_for_the_resource_algorithm(
    schema_dir: Path, keys: Keys, big_model: Path
) -> None:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    schemas = {p.name: json.loads(p.read_text()) for p in schema_dir.glob("*.schema.json")}
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
        for s in schemas.values()
    )
    bundle = sign_model(big_model, _signer(keys), shard_size=1000, write=False).bundle
    Draft202012Validator(schemas["bundle.schema.json"], registry=registry).validate(
        json.loads(bundle)
    )
    statement = _statement(bundle)
    validator = Draft202012Validator(schemas["statement.schema.json"], registry=registry)
    errors = list(validator.iter_errors(statement))
    # The one deliberate difference (docs/adr/0012): "sha256-sharded-1000", not "sha256".
    assert errors
    assert all(list(e.absolute_path)[-1] == "algorithm" for e in errors)
    for resource in statement["predicate"]["resources"]:
        resource["algorithm"] = "sha256"
    validator.validate(statement)


# --- --ignore-unsigned-files ----------------------------------------------------------------


def test_ignore_unsigned_files_tolerates_and_reports_extra_files(
    keys: Keys, model: Path, cli: Cli
) -> None:
    assert cli("sign", model, "--key", keys.p256.private, "-q").code == 0
    (model / "notes.txt").write_text("unsigned")
    (model / "weights" / "extra.bin").write_bytes(b"e")
    before = _tree(model)
    refused = cli("verify", model, "--key", keys.p256.public)
    assert refused.code == 1
    result = cli("verify", model, "--key", keys.p256.public, "--ignore-unsigned-files")
    assert result.code == 0, result.err
    assert "2 unsigned file(s) tolerated: 'notes.txt', 'weights/extra.bin'" in result.out
    as_json = json.loads(
        cli("verify", model, "--key", keys.p256.public, "--ignore-unsigned-files", "--json").out
    )
    assert as_json["unsigned_files"] == ["notes.txt", "weights/extra.bin"]
    assert _tree(model) == before


def test_ignore_unsigned_files_still_needs_every_signed_file(
    keys: Keys, model: Path, cli: Cli
) -> None:
    assert cli("sign", model, "--key", keys.p256.private, "-q").code == 0
    (model / "config.json").rename(model / "config.yaml")
    result = cli("verify", model, "--key", keys.p256.public, "--ignore-unsigned-files")
    assert result.code == 1
    assert "'config.json' is signed but missing" in one_error_line(result.err)
    (model / "config.yaml").rename(model / "config.json")
    (model / "weights" / "part-1.bin").write_bytes(b"changed")
    result = cli("verify", model, "--key", keys.p256.public, "--ignore-unsigned-files")
    assert result.code == 1
    assert "does not match its signed digest" in one_error_line(result.err)


def test_ignore_unsigned_files_in_the_python_api(keys: Keys, model: Path) -> None:
    sign_model(model, _signer(keys))
    (model / "extra").write_text("x")
    strict = api_verify(model, trust=_trust(keys))
    assert not strict.passed
    tolerant = api_verify(model, trust=_trust(keys), ignore_unsigned_files=True)
    assert tolerant.passed
    assert tolerant.unsigned_files == ("extra",)


def test_a_registered_version_never_tolerates_unsigned_files(
    keys: Keys, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPROV_HOME", str(tmp_path / "home"))
    result = cli("verify", "credit-risk/1", "--key", keys.p256.public, "--ignore-unsigned-files")
    assert result.code == 2
    assert "a registered version is verified against exactly its signed files" in one_error_line(
        result.err
    )
    assert not (tmp_path / "home").exists()


def _typer_only(args: list[str]) -> tuple[int, str, str]:
    from mlprov.cli import _run_typer
    from mlprov.errors import MlprovError

    try:
        return _run_typer(args), "", ""
    except MlprovError as e:
        return e.exit_code, "", f"mlprov: error: {e.message}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["sign", "{model}", "--key", "{key}", "--shard-size", "1000", "--signature", "{out}"],
        ["sign", "{model}", "--key", "{key}", "--shard-size", "0"],
        ["verify", "{model}", "--key", "{pub}", "--ignore-unsigned-files"],
        ["verify", "{model}", "--key", "{pub}", "--ignore-unsigned-files", "--json"],
    ],
    ids=["sign-shards", "sign-shards-zero", "verify-unsigned", "verify-unsigned-json"],
)
def test_the_fast_path_and_typer_agree(
    args: list[str], keys: Keys, big_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlprov.cli._direct import (
        _SIGN_FLAGS,
        _SIGN_VALUES,
        _VERIFY_FLAGS,
        _VERIFY_VALUES,
        _simple_form,
    )

    sign_model(big_model, _signer(keys))
    (big_model / "unsigned.txt").write_text("u")
    values = {
        "model": big_model,
        "key": keys.p256.private,
        "pub": keys.p256.public,
        "out": tmp_path / "o.sig",
    }
    argv = [a.format(**values) for a in args]
    table = (_VERIFY_VALUES, _VERIFY_FLAGS) if argv[0] == "verify" else (_SIGN_VALUES, _SIGN_FLAGS)
    assert _simple_form(argv[1:], *table) is not None
    capsys.readouterr()
    fast_code = main(argv)
    fast = capsys.readouterr()
    slow_code, _, slow_err = _typer_only(argv)
    slow = capsys.readouterr()
    assert fast_code == slow_code
    if "--signature" not in argv:
        assert fast.out == slow.out
    assert fast.err == (slow.err or slow_err)


# --- OMS v1.0 section 11 relaxations and section 6.2 ignore paths ----------------------------


@pytest.mark.parametrize(
    "variant",
    ["keyid-absent", "keyid-null", "keyid-empty", "tlog-absent", "tlog-empty", "raw-bytes-key"],
)
def test_section_11_bundle_variants_verify(keys: Keys, model: Path, variant: str) -> None:
    bundle = json.loads(sign_model(model, _signer(keys), write=False).bundle)
    signature = bundle["dsseEnvelope"]["signatures"][0]
    material = bundle["verificationMaterial"]
    if variant == "keyid-absent":
        del signature["keyid"]
    elif variant == "keyid-null":
        signature["keyid"] = None
    elif variant == "keyid-empty":
        signature["keyid"] = ""
    elif variant == "tlog-absent":
        del material["tlogEntries"]
    elif variant == "tlog-empty":
        material["tlogEntries"] = []
    else:
        pem = keys.p256.public.read_bytes()
        material["publicKey"] = {
            "rawBytes": base64.b64encode(pem).decode(),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
        }
    report = verify_model(model, json.dumps(bundle).encode(), _trust(keys))
    assert report.passed, report.error


@pytest.mark.parametrize("variant", ["no-ignore-paths", "subject-named-model"])
def test_section_11_statement_variants_verify(keys: Keys, model: Path, variant: str) -> None:
    statement = _statement(sign_model(model, _signer(keys), write=False).bundle)
    if variant == "no-ignore-paths":
        del statement["predicate"]["serialization"]["ignore_paths"]
    else:
        statement["subject"][0]["name"] = "model"
    (model / "model.sig").write_bytes(_resign(keys, statement))
    report = verify_model(
        model,
        read_signature_file(model / "model.sig"),
        _trust(keys),
        signature_path=model / "model.sig",
    )
    assert report.passed, report.error


@pytest.mark.parametrize(
    ("signed", "ignored"),
    [
        pytest.param("./cache", True, id="dot-slash"),
        pytest.param("cache/", True, id="trailing-slash"),
        pytest.param("cache", True, id="plain"),
        pytest.param("../cache", False, id="parent-dropped"),
        pytest.param("/cache", False, id="absolute-dropped"),
        pytest.param("cach*", False, id="glob-dropped"),
    ],
)
def test_signed_ignore_paths_are_read_as_the_spec_defines_them(
    keys: Keys, model: Path, signed: str, ignored: bool
) -> None:
    statement = _statement(sign_model(model, _signer(keys), write=False).bundle)
    statement["predicate"]["serialization"]["ignore_paths"].append(signed)
    (model / "cache").mkdir()
    (model / "cache" / "tmp.bin").write_bytes(b"cached")
    report = verify_model(model, _resign(keys, statement), _trust(keys))
    assert report.passed is ignored, report.error


def test_default_ignores_are_top_level_only(keys: Keys, model: Path) -> None:
    (model / "weights" / ".git").mkdir()
    (model / "weights" / ".git" / "HEAD").write_text("ref")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref")
    manifest = sign_model(model, _signer(keys), write=False).manifest
    assert "weights/.git/HEAD" in manifest.names
    assert not any(name.startswith(".git/") for name in manifest.names)
    assert inspect_signature(sign_model(model, _signer(keys), write=False).bundle).method == "key"
