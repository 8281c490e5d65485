"""What the read commands print: evidence checked before it is shown, registry data as
text (never markup or terminal control), tables for 80 columns, and one JSON shape per
record type (docs/cli.md), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from support.bad_input import cli_batch
from support.registry_env import RegistryEnv, make_model, one_line_error

HOSTILE_TAGS = {
    "markup": "[bold red]x[/]",
    "colour": "\x1b[31mred",
    "link": "\x1b]8;;http://evil\x07click\x1b]8;;\x07",
    "csi": "\x9b2J",
    "bidi": "abc\u202edef",
}
#: Characters that must never reach the terminal from registry data.
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


# -- fixtures ------------------------------------------------------------------------------


def _keypair(folder: Path, name: str) -> tuple[Path, Path]:
    from mlprov import signing

    private = signing.generate_private_key_pem()
    key, public = folder / f"{name}.key", folder / f"{name}.pub"
    key.write_bytes(private)
    public.write_bytes(signing.public_key_pem(signing.load_private_key(private).public_key()))
    return key, public


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A signing certificate no one trusts: its bundles verify only with themselves."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ci signer")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / "cert.key", folder / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return _keypair(tmp_path, "signing")


@pytest.fixture
def signed(reg: RegistryEnv, tmp_path: Path, keys: tuple[Path, Path]) -> RegistryEnv:
    """scorer/1 and scorer/2, key-signed with provenance, ML-BOM and card; hostile tags;
    scorer@prod -> 1; scorer/1 in Staging."""
    from mlprov.registry import VersionInput
    from mlprov.signing import KeySigner

    signer = KeySigner.from_pem(keys[0].read_bytes())
    registry = reg.registry()
    try:
        registry.create_model("scorer", description="scores \x1b[2Jthings", tags=HOSTILE_TAGS)
        for number, weights in ((1, b"\x01" * 1_300_000), (2, b"\x02" * 2000)):
            registry.sign_and_register(
                make_model(tmp_path / f"v{number}", {"config.json": "{}", "w.bin": weights}),
                "scorer",
                signer,
                VersionInput(
                    metrics={"auc": 0.91, "auc[segment=retail]": 0.88},
                    tags=HOSTILE_TAGS,
                    description="line one\nline two \x1b]8;;http://evil\x07",
                ),
                write_signature=False,
            )
        registry.set_alias("scorer", "prod", 1, reason="first \x1b[5mrelease")
        registry.set_stage("scorer", 1, "Staging")
    finally:
        registry.close()
    return reg


def _sql(reg: RegistryEnv, statement: str, **params: Any) -> list[Any]:
    import sqlalchemy as sa

    registry = reg.registry()
    try:
        with registry.metadata.engine.begin() as connection:
            result = connection.execute(sa.text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        registry.close()


def _evidence_row(reg: RegistryEnv, version: int, kind: str) -> Any:
    (row,) = _sql(
        reg,
        "SELECT e.id, e.content, e.digest FROM evidence e JOIN versions v ON v.id = e.version_id "
        "WHERE v.number = :n AND e.kind = :k",
        n=version,
        k=kind,
    )
    return row


def _store_content(reg: RegistryEnv, row_id: int, content: bytes) -> None:
    """Replace a stored envelope as someone with database access would: bytes and the
    digest beside them, so the stored-digest check alone cannot notice."""
    from mlprov.manifest import Digest

    _sql(
        reg,
        "UPDATE evidence SET content = :c, digest = :d WHERE id = :i",
        c=content,
        d=str(Digest.of_bytes(content)),
        i=row_id,
    )


def _forged(content: bytes) -> bytes:
    """The same bundle with its statement's predicate changed (subject kept)."""
    bundle = json.loads(content)
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["forged"] = True
    payload = json.dumps(statement).encode()
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    return json.dumps(bundle).encode()


def _refused(result: Any, needle: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert needle in one_line_error(result.stderr), result.stderr


# -- evidence is checked before it is printed -------------------------------------------------


def test_documents_say_who_signed_and_how_it_was_checked(
    signed: RegistryEnv, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    other = _keypair(tmp_path, "other")
    results = cli_batch(
        signed,
        {
            "plain": ["provenance", "scorer/1"],
            "trusted": ["provenance", "scorer/1", "--key", str(keys[1])],
            "card trusted": ["card", "scorer/2", "--key", str(keys[1])],
            "bom json": ["bom", "scorer/1", "--json"],
            "raw": ["bom", "scorer/1", "--raw", "--key", str(keys[1])],
            "evidence": ["evidence", "scorer/1", "--key", str(keys[1]), "--json"],
            "wrong key": ["provenance", "scorer/1", "--key", str(other[1])],
            "evidence wrong key": ["evidence", "scorer/1", "--key", str(other[1])],
        },
    )
    hint = json.loads(results["evidence"].stdout)[0]["verification"]["signer"]["subject"]
    plain = results["plain"]
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["predicateType"] == "https://slsa.dev/provenance/v1"
    assert f"signed by key:{hint}" in plain.stderr
    assert "NOT checked" in plain.stderr
    assert "--key" in plain.stderr
    trusted = results["trusted"]
    assert trusted.returncode == 0, trusted.stderr
    assert "verified against the given key" in trusted.stderr
    assert "NOT checked" not in trusted.stderr
    assert results["card trusted"].stdout.startswith("---\n")
    document = json.loads(results["bom json"].stdout)
    assert document["verification"] == {
        "signature": "unchecked",
        "trusted": False,
        "signer": {
            "method": "key",
            "subject": hint,
            "issuer": None,
            "fingerprint": hint,
            "display": f"key:{hint}",
        },
        "subject": document["statement"]["subject"][0]["digest"]["sha256"].join(["sha256:", ""]),
    }
    assert document["statement"]["predicate"]["bomFormat"] == "CycloneDX"
    # --raw is the stored bytes, exactly, after the check.
    row = _evidence_row(signed, 1, "bom")
    assert results["raw"].returncode == 0, results["raw"].stderr
    assert results["raw"].stdout.encode() == bytes(row.content).rstrip(b"\n") + b"\n"
    listed = json.loads(results["evidence"].stdout)
    assert [e["kind"] for e in listed] == ["signature", "provenance", "bom", "model-card"]
    assert {e["verification"]["signature"] for e in listed} == {"trusted"}
    _refused(results["wrong key"], "does not verify")
    _refused(results["evidence wrong key"], "does not verify")


def test_forged_or_swapped_evidence_exits_1_and_prints_nothing(
    signed: RegistryEnv, keys: tuple[Path, Path]
) -> None:
    provenance_1 = _evidence_row(signed, 1, "provenance")
    provenance_2 = _evidence_row(signed, 2, "provenance")
    card_1 = _evidence_row(signed, 1, "model-card")
    _store_content(signed, provenance_1.id, _forged(bytes(provenance_1.content)))
    # Version 2's (validly signed) provenance, put in place of version 1's card.
    _store_content(signed, card_1.id, bytes(provenance_2.content))
    bom_2 = _evidence_row(signed, 2, "bom")
    _sql(signed, "UPDATE evidence SET signer = 'key:0000' WHERE id = :i", i=bom_2.id)
    before = signed.snapshot()
    results = cli_batch(
        signed,
        {
            "forged": ["provenance", "scorer/1", "--key", str(keys[1])],
            "forged raw": ["provenance", "scorer/1", "--raw", "--key", str(keys[1])],
            "forged json": ["provenance", "scorer/1", "--json", "--key", str(keys[1])],
            "forged listed": ["evidence", "scorer/1", "--key", str(keys[1])],
            "swapped": ["card", "scorer/1"],
            "swapped trusted": ["card", "scorer/1", "--key", str(keys[1])],
            "other signer": ["bom", "scorer/2"],
            "other signer listed": ["evidence", "scorer/2", "--json"],
            "untouched": ["bom", "scorer/1", "--key", str(keys[1])],
        },
    )
    for name in ("forged", "forged raw", "forged json", "forged listed"):
        _refused(results[name], "does not verify")
    for name in ("swapped", "swapped trusted"):
        _refused(results[name], "is not about this version")
    for name in ("other signer", "other signer listed"):
        _refused(results[name], "recorded as signed by key:0000")
    assert results["untouched"].returncode == 0, results["untouched"].stderr
    assert signed.snapshot() == before


def test_a_certificate_bundle_is_checked_with_the_certificate_it_carries(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    from mlprov.signing import CertificateSigner

    key, certificate = _self_signed(tmp_path)
    signer = CertificateSigner.from_pem(key.read_bytes(), certificate.read_bytes())
    registry = reg.registry()
    try:
        registry.sign_and_register(
            make_model(tmp_path / "m"), "ci-model", signer, write_signature=False
        )
    finally:
        registry.close()
    good = cli_batch(reg, {"card": ["card", "ci-model/1"]})["card"]
    assert good.returncode == 0, good.stderr
    assert "signed by certificate:CN=ci signer (CN=ci signer)" in good.stderr
    assert "verifies with the certificate or key its bundle carries" in good.stderr
    assert "not checked against a trusted one" in good.stderr
    row = _evidence_row(reg, 1, "model-card")
    _store_content(reg, row.id, _forged(bytes(row.content)))
    before = reg.snapshot()
    results = cli_batch(reg, {"card": ["card", "ci-model/1"], "listed": ["evidence", "ci-model/1"]})
    _refused(results["card"], "does not verify with the certificate the bundle carries")
    _refused(results["listed"], "does not verify")
    assert reg.snapshot() == before


# -- registry data is text --------------------------------------------------------------------


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "forced-colour"])
def test_registry_data_is_printed_as_text(
    signed: RegistryEnv, monkeypatch: pytest.MonkeyPatch, colour: bool
) -> None:
    if colour:
        monkeypatch.setenv("FORCE_COLOR", "1")  # as at a terminal: Rich styles its own parts
    else:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "250")  # no folding: each value whole on one line
    commands = {
        "models list": ["models", "list"],
        "models show": ["models", "show", "scorer"],
        "versions list": ["versions", "list", "scorer"],
        "versions show": ["versions", "show", "scorer/1", "--wide"],
        "alias history": ["alias", "history", "scorer"],
        "card": ["card", "scorer/1"],
    }
    results = cli_batch(signed, commands)
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
    show = results["versions show"].stdout
    assert "markup=[bold red]x[/]" in show
    assert "auc[segment=retail] = 0.88" in show
    assert "colour=\\x1b[31mred" in show
    assert "link=\\x1b]8;;http://evil\\x07click\\x1b]8;;\\x07" in show
    assert "csi=\\x9b2J" in show
    assert "bidi=abc\\u202edef" in show
    assert "line one\\x0aline two" in show  # one value, one line
    assert "markup=[bold red]x[/]" in results["models list"].stdout
    assert "scores \\x1b[2Jthings" in results["models show"].stdout
    assert "first \\x1b[5mrelease" in results["alias history"].stdout
    for name, result in results.items():
        for control in RAW_CONTROLS[1:]:
            assert control not in result.stdout, (name, control)
        if not colour:
            assert "\x1b" not in result.stdout, name
        # Rich's own styling is the only escape sequence left: SGR, never OSC or others.
        assert re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).count("\x1b") == 0, name


def test_json_keeps_values_exact_and_terminal_safe(signed: RegistryEnv) -> None:
    results = cli_batch(
        signed,
        {
            "models": ["models", "show", "scorer", "--json"],
            "version": ["versions", "show", "scorer/1", "--json"],
        },
    )
    for result in results.values():
        assert result.returncode == 0, result.stderr
        for control in RAW_CONTROLS:
            assert control not in result.stdout
    assert json.loads(results["models"].stdout)["tags"] == HOSTILE_TAGS
    version = json.loads(results["version"].stdout)
    assert version["tags"] == HOSTILE_TAGS
    assert version["metrics"] == {"auc": 0.91, "auc[segment=retail]": 0.88}


# -- tables at 80 columns ---------------------------------------------------------------------


def test_tables_read_well_at_80_columns(
    signed: RegistryEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    tables = {
        "models list": ["models", "list"],
        "models show": ["models", "show", "scorer"],
        "versions list": ["versions", "list", "scorer"],
        "versions show": ["versions", "show", "scorer/1", "--files"],
        "alias history": ["alias", "history", "scorer"],
        "stage history": ["stage", "history", "scorer"],
        "audit log": ["audit", "log", "--subject", "scorer"],
        "evidence": ["evidence", "scorer/1"],
    }
    results = cli_batch(
        signed, {**tables, **{f"{k} wide": [*v, "--wide"] for k, v in tables.items()}}
    )
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
        if not name.endswith("wide"):
            too_long = [line for line in result.stdout.splitlines() if len(line) > 80]
            assert too_long == [], (name, too_long)
    registry = signed.registry()
    try:
        v1, v2 = registry.list_versions("scorer")
    finally:
        registry.close()
    hex1, hex2 = v1.digest.partition(":")[2], v2.digest.partition(":")[2]
    lines = results["versions list"].stdout.splitlines()
    assert lines[0] == "Versions of scorer"
    assert lines[1].split() == ["version", "digest", "size", "stage", "aliases", "created"]
    assert set(lines[2]) == {"─"}
    assert re.fullmatch(rf"1 +sha256:{hex1[:8]}… +1\.2 MiB +Staging +prod +{TIME}", lines[3]), (
        lines[3]
    )
    assert re.fullmatch(rf"2 +sha256:{hex2[:8]}… +2\.0 KiB +- +{TIME}", lines[4]), lines[4]
    assert len(lines) == 5
    wide = results["versions list wide"].stdout
    for full in (v1.digest, f"{v1.size} B", v1.created_at):
        assert full in wide
    evidence = results["evidence"].stdout.splitlines()
    assert evidence[1].split() == ["kind", "signer", "signature", "digest"]
    assert re.fullmatch(
        r"signature +key:[0-9a-f]{16}… +not checked +sha256:[0-9a-f]{8}…", evidence[3]
    ), evidence[3]
    assert "sha256:" + "0" * 8 not in results["evidence wide"].stdout
    assert re.search(r"sha256:[0-9a-f]{64}", results["evidence wide"].stdout)
    audit = results["audit log"].stdout.splitlines()
    assert audit[1].split() == ["seq", "when", "who", "action", "subject", "reason"]
    assert re.search(r"[0-9a-f]{64}", results["audit log wide"].stdout)


# -- one JSON shape per record type -----------------------------------------------------------

MODEL_KEYS = {
    "name",
    "description",
    "tags",
    "created_at",
    "created_by",
    "latest_version",
    "aliases",
}
EVIDENCE_KEYS = {
    "id",
    "kind",
    "media_type",
    "predicate_type",
    "digest",
    "signer",
    "created_at",
    "created_by",
}
VERSION_KEYS = {
    "name",
    "version",
    "digest",
    "hash_algorithm",
    "size",
    "file_count",
    "single_file",
    "artifact_name",
    "stage",
    "params",
    "metrics",
    "tags",
    "description",
    "datasets",
    "lineage",
    "source_uri",
    "run_id",
    "code_repo",
    "code_commit",
    "code_dirty",
    "builder_id",
    "started_at",
    "finished_at",
    "environment",
    "card",
    "formats",
    "created_at",
    "created_by",
    "aliases",
    "evidence",
}
ALIAS_EVENT_KEYS = {
    "name",
    "alias",
    "kind",
    "from_version",
    "to_version",
    "generation",
    "actor",
    "at",
    "reason",
}
STAGE_EVENT_KEYS = {"name", "version", "from_stage", "to_stage", "actor", "at", "reason"}
AUDIT_KEYS = {"seq", "at", "actor", "action", "subject", "details", "reason", "prev_hash", "hash"}
VERIFICATION_KEYS = {"signer", "signature", "trusted", "subject"}


def test_every_read_command_prints_one_json_shape_per_record(signed: RegistryEnv) -> None:
    cases = {
        "models list": ["models", "list", "--json"],
        "models show": ["models", "show", "scorer", "--json"],
        "versions list": ["versions", "list", "scorer", "--json"],
        "versions show": ["versions", "show", "scorer@prod", "--json"],
        "versions show files": ["versions", "show", "scorer/2", "--files", "--json"],
        "alias show": ["alias", "show", "scorer", "prod", "--json"],
        "alias history": ["alias", "history", "scorer", "--json"],
        "stage history": ["stage", "history", "scorer", "--json"],
        "resolve": ["resolve", "scorer@prod", "--json"],
        "audit log": ["audit", "log", "--json"],
        "evidence": ["evidence", "scorer/1", "--json"],
        "provenance": ["provenance", "scorer/1", "--json"],
        "bom": ["bom", "scorer/1", "--json"],
        "card": ["card", "scorer/1", "--json"],
        "lineage": ["lineage", "scorer/1", "--json"],
    }
    results = cli_batch(signed, cases)
    out = {}
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
        out[name] = json.loads(result.stdout)

    assert [set(m) for m in out["models list"]] == [MODEL_KEYS]
    assert out["models list"][0] == out["models show"]
    assert out["models show"]["aliases"] == {"prod": 1}
    # Versions: the same keys in list and show; aliases the same type as on models.
    assert [set(v) for v in out["versions list"]] == [VERSION_KEYS, VERSION_KEYS]
    assert out["versions list"][0] == out["versions show"]
    assert set(out["versions show files"]) == VERSION_KEYS | {"files"}
    assert [f["path"] for f in out["versions show files"]["files"]] == ["config.json", "w.bin"]
    v1, v2 = out["versions list"]
    assert (v1["stage"], v1["aliases"]) == ("Staging", {"prod": 1})
    assert (v2["stage"], v2["aliases"]) == (None, {})
    assert [set(e) for e in v1["evidence"]] == [EVIDENCE_KEYS] * 4
    assert out["alias show"] == {"name": "scorer", "alias": "prod", "version": 1, "generation": 1}
    assert [set(e) for e in out["alias history"]] == [ALIAS_EVENT_KEYS]
    (stage,) = out["stage history"]
    assert set(stage) == STAGE_EVENT_KEYS
    assert (stage["from_stage"], stage["to_stage"]) == (None, "Staging")
    assert out["resolve"] == {
        "ref": "scorer@prod",
        "name": "scorer",
        "version": 1,
        "digest": v1["digest"],
    }
    audit = out["audit log"]
    assert {frozenset(e) for e in audit} == {frozenset(AUDIT_KEYS)}
    assert all(isinstance(e["details"], dict) for e in audit)
    stage_entry = next(e for e in audit if e["action"] == "stage.set")
    assert stage_entry["details"]["to"] == "Staging"
    assert [set(e) for e in out["evidence"]] == [EVIDENCE_KEYS | {"verification"}] * 4
    assert {frozenset(e["verification"]) for e in out["evidence"]} == {frozenset(VERIFICATION_KEYS)}
    for kind, name in (("provenance", "provenance"), ("bom", "bom"), ("model-card", "card")):
        document = out[name]
        assert set(document) == {"version", "kind", "evidence", "verification", "statement"}
        assert (document["version"], document["kind"]) == ("scorer/1", kind)
        assert set(document["evidence"]) == EVIDENCE_KEYS
        assert set(document["verification"]) == VERIFICATION_KEYS
        assert document["verification"]["subject"] == v1["digest"]
    assert isinstance(out["lineage"], dict)
