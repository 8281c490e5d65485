"""Pure unit tests of the core: references and names, digests and manifests, the audit
hash chain, and hashing a model folder (refs.py, manifest.py, audit.py, hashing.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from pathlib import Path

import pytest

from mlprov.audit import GENESIS_HASH, details_text, entry_hash, verify_chain
from mlprov.errors import (
    AuditChainError,
    InvalidInputError,
    InvalidNameError,
    InvalidReferenceError,
    MalformedDocumentError,
    NotFoundError,
    UnsafePathError,
)
from mlprov.hashing import hash_file, hash_model, list_model_files
from mlprov.manifest import Digest, FileEntry, Manifest, check_relative_path
from mlprov.records import AuditEntry
from mlprov.refs import LATEST, ModelRef, validate_alias, validate_model_name

# -- names and references ----------------------------------------------------------------

GOOD_NAMES = ["a", "0", "credit-risk", "llama.3_1-8b", "a" * 128, "x.y", "9lives"]

BAD_NAMES = {
    "upper case": "Credit",
    "space": "credit risk",
    "cyrillic a": "cr\u0430dit",  # U+0430 looks like 'a'
    "greek omicron": "m\u03bfdel",
    "fullwidth letter": "\uff4dodel",
    "dot dot": "..",
    "dot dot inside": "a..b",
    "slash": "a/b",
    "backslash": "a\\b",
    "leading dot": ".hidden",
    "leading dash": "-rf",
    "leading underscore": "_x",
    "empty": "",
    "too long": "a" * 129,
    "nul": "a\x00b",
    "newline": "a\nb",
    "at sign": "a@b",
    "colon": "models:x",
}


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_model_names_are_accepted(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_invalid_model_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        validate_model_name(name)
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "alias", ["production", "staging", "champion-2", "a.b_c", LATEST, "v1", "a" * 64]
)
def test_valid_aliases_are_accepted(alias: str) -> None:
    assert validate_alias(alias) == alias


@pytest.mark.parametrize(
    "alias",
    ["Production", "", "123", "0", "a..b", "prod uction", "pr\u043ed", "a" * 65, "a/b", "@x"],
)
def test_invalid_aliases_are_refused(alias: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_alias(alias)


REF_FORMS = [
    ("models:/credit-risk/3", ModelRef("credit-risk", version=3)),
    ("models:/credit-risk@production", ModelRef("credit-risk", alias="production")),
    ("credit-risk/3", ModelRef("credit-risk", version=3)),
    ("credit-risk@production", ModelRef("credit-risk", alias="production")),
    ("credit-risk@latest", ModelRef("credit-risk", alias=LATEST)),
    ("a.b/123456789", ModelRef("a.b", version=123456789)),
    ("m/007", ModelRef("m", version=7)),
]


@pytest.mark.parametrize(("text", "expected"), REF_FORMS, ids=[t for t, _ in REF_FORMS])
def test_every_reference_form_parses(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected


@pytest.mark.parametrize(("text", "expected"), REF_FORMS, ids=[t for t, _ in REF_FORMS])
def test_reference_round_trip(text: str, expected: ModelRef) -> None:
    ref = ModelRef.parse(text)
    assert ModelRef.parse(str(ref)) == ref
    assert str(ModelRef.parse(str(ref))) == str(ref)
    assert ModelRef.parse(f"models:/{ref}") == ref


BAD_REFS = {
    "no version": "credit-risk",
    "version zero": "credit-risk/0",
    "negative": "credit-risk/-1",
    "not a number": "credit-risk/three",
    "too many digits": "credit-risk/1234567890",
    "empty alias": "credit-risk@",
    "digit alias": "credit-risk@42",
    "upper case alias": "credit-risk@Prod",
    "upper case name": "Credit-risk/1",
    "cyrillic name": "cr\u0430dit/1",
    "nested path": "a/b/1",
    "prefix only": "models:/",
    "empty": "",
    "double at": "m@a@b",
    "trailing slash": "m/1/",
    "dot dot": "../1",
}


@pytest.mark.parametrize("text", BAD_REFS.values(), ids=BAD_REFS.keys())
def test_invalid_references_are_refused_with_one_line(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        ModelRef.parse(text)
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)


def test_a_reference_names_exactly_one_of_version_or_alias() -> None:
    with pytest.raises(InvalidReferenceError):
        ModelRef("m")
    with pytest.raises(InvalidReferenceError):
        ModelRef("m", version=1, alias="prod")
    with pytest.raises(InvalidReferenceError):
        ModelRef("m", version=0)


def test_references_are_frozen_and_hashable() -> None:
    ref = ModelRef("m", version=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.version = 2  # type: ignore[misc]
    assert {ref, ModelRef.parse("models:/m/1")} == {ref}


# -- digests and manifests ---------------------------------------------------------------

SHA_A = hashlib.sha256(b"a").hexdigest()
SHA_B = hashlib.sha256(b"b").hexdigest()


def test_digest_parse_and_str_round_trip() -> None:
    digest = Digest.parse(f"sha256:{SHA_A}")
    assert digest == Digest("sha256", SHA_A)
    assert str(digest) == f"sha256:{SHA_A}"
    assert Digest.parse(f"sha256:{SHA_A.upper()}") == digest
    assert Digest.of_bytes(b"a") == digest
    assert digest.raw == hashlib.sha256(b"a").digest()


@pytest.mark.parametrize(
    "text",
    [
        SHA_A,  # no algorithm
        f"md5:{SHA_A}",
        f"sha256:{SHA_A[:-1]}",
        f"sha256:{SHA_A}00",
        "sha256:" + "g" * 64,
        "sha256:",
        f"blake2b:{SHA_A}",  # wrong length for blake2b
    ],
)
def test_malformed_digests_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError):
        Digest.parse(text)


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\b", "a\x00b", "", "a/", "./a"],
)
def test_unsafe_manifest_paths_are_refused(path: str) -> None:
    with pytest.raises(MalformedDocumentError):
        check_relative_path(path)


@pytest.mark.parametrize("path", [".", "a", "a/b/c.bin", "weights/model-00001.safetensors"])
def test_safe_manifest_paths_are_accepted(path: str) -> None:
    assert check_relative_path(path) == path


def _entry(path: str, content: bytes) -> FileEntry:
    return FileEntry(path, Digest.of_bytes(content), len(content))


def test_manifest_orders_files_component_by_component() -> None:
    # OMS order: paths compared as PurePosixPath, so "a/b" < "a-c" < "a.d" (not text order).
    manifest = Manifest.of(
        "sha256", [_entry("a.d", b"1"), _entry("a-c", b"2"), _entry("a/b", b"3")]
    )
    assert [f.path for f in manifest] == ["a/b", "a-c", "a.d"]
    assert sorted(["a.d", "a-c", "a/b"]) != ["a/b", "a-c", "a.d"]  # text order differs


def test_manifest_root_digest_is_sha256_over_raw_file_digests_in_order() -> None:
    manifest = Manifest.of("sha256", [_entry("b", b"b"), _entry("a", b"a")])
    expected = hashlib.sha256(hashlib.sha256(b"a").digest() + hashlib.sha256(b"b").digest())
    assert manifest.digest == Digest("sha256", expected.hexdigest())
    # Input order does not matter; content does.
    same = Manifest.of("sha256", [_entry("a", b"a"), _entry("b", b"b")])
    assert same.digest == manifest.digest
    changed = Manifest.of("sha256", [_entry("a", b"a"), _entry("b", b"B")])
    assert changed.digest != manifest.digest
    assert manifest.total_size == 2
    assert not manifest.is_single_file


def test_manifest_refuses_duplicates_mixed_algorithms_and_single_file_siblings() -> None:
    with pytest.raises(MalformedDocumentError):
        Manifest.of("sha256", [_entry("a", b"1"), _entry("a", b"2")])
    blake = FileEntry("b", Digest("blake2b", hashlib.blake2b(b"b").hexdigest()), 1)
    with pytest.raises(MalformedDocumentError):
        Manifest.of("sha256", [_entry("a", b"1"), blake])
    with pytest.raises(MalformedDocumentError):
        Manifest.of("sha256", [_entry(".", b"1"), _entry("a", b"2")])
    with pytest.raises(InvalidInputError):
        Manifest.of("md5", [])
    with pytest.raises(MalformedDocumentError):
        FileEntry("a", Digest.of_bytes(b"a"), -1)


def test_manifest_compare_names_every_difference() -> None:
    expected = Manifest.of("sha256", [_entry("a", b"a"), _entry("b", b"b")])
    actual = Manifest.of("sha256", [_entry("a", b"A"), _entry("c", b"c")])
    problems = expected.compare(actual)
    assert len(problems) == 3
    assert any(p.startswith("a: digest mismatch") for p in problems)
    assert "b: missing" in problems
    assert "c: extra file not in the manifest" in problems
    assert expected.compare(expected) == []


def test_manifest_is_frozen() -> None:
    manifest = Manifest.of("sha256", [_entry("a", b"a")])
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.algorithm = "blake2b"  # type: ignore[misc]


# -- the audit hash chain ----------------------------------------------------------------


def _chain(count: int) -> list[AuditEntry]:
    entries = []
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        fields = {
            "seq": seq,
            "at": f"2026-01-01T00:00:{seq:02d}.000000Z",
            "actor": "alice@ci",
            "action": "alias.set",
            "subject": f"m@prod{seq}",
            "details": details_text({"to": seq, "note": "\u00e9"}),
            "reason": "because",
            "prev_hash": prev,
        }
        digest = entry_hash(**fields)
        entries.append(AuditEntry(**fields, hash=digest))
        prev = digest
    return entries


def _head(entries: list[AuditEntry]) -> dict[str, object]:
    return {"head_seq": entries[-1].seq, "head_hash": entries[-1].hash}


def test_audit_details_are_rfc8785_text() -> None:
    # RFC 8785 section 3.2.3: keys sort by UTF-16 code units, so U+1F600 (D83D DE00)
    # comes before U+FFFF, unlike a sort by code points; numbers are ECMAScript's form.
    assert details_text({"\uffff": 1, "\U0001f600": 2, "a": 1.0, "b": 1e21, "c": "\u00e9"}) == (
        '{"a":1,"b":1e+21,"c":"\u00e9","\U0001f600":2,"\uffff":1}'
    )


def test_an_entry_hash_is_sha256_of_the_rfc8785_bytes_of_its_fields() -> None:
    # What docs/registry.md tells a third party to recompute, written out by hand.
    body = (
        '{"action":"alias.set","actor":"ci@example","at":"2026-01-01T00:00:00.000000Z",'
        '"details":"{\\"to\\":2}","prev_hash":"' + GENESIS_HASH + '","reason":"r\u00e9",'
        '"seq":1,"subject":"m@prod"}'
    )
    assert (
        entry_hash(
            seq=1,
            at="2026-01-01T00:00:00.000000Z",
            actor="ci@example",
            action="alias.set",
            subject="m@prod",
            details=details_text({"to": 2}),
            reason="r\u00e9",
            prev_hash=GENESIS_HASH,
        )
        == hashlib.sha256(body.encode("utf-8")).hexdigest()
    )


def test_an_intact_chain_verifies() -> None:
    entries = _chain(5)
    assert verify_chain(entries, **_head(entries)) == 5  # type: ignore[arg-type]
    assert verify_chain([], head_seq=0, head_hash=GENESIS_HASH) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("at", "2026-01-01T00:00:00.000000Z"),
        ("actor", "mallory@ci"),
        ("action", "alias.rollback"),
        ("subject", "m@other"),
        ("details", details_text({"to": 99})),
        ("reason", ""),
    ],
)
def test_editing_any_field_breaks_the_chain_at_that_entry(field: str, value: str) -> None:
    entries = _chain(5)
    entries[2] = entries[2].model_copy(update={field: value})
    with pytest.raises(AuditChainError) as caught:
        verify_chain(entries, **_head(entries))  # type: ignore[arg-type]
    assert caught.value.sequence == 3
    assert "audit entry 3" in str(caught.value)


def test_rehashing_an_edited_entry_is_caught_at_the_next_link() -> None:
    entries = _chain(5)
    edited = entries[2].model_dump()
    edited["action"] = "model.create"
    edited["hash"] = entry_hash(**{k: v for k, v in edited.items() if k != "hash"})
    entries[2] = AuditEntry(**edited)
    with pytest.raises(AuditChainError) as caught:
        verify_chain(entries, head_seq=5, head_hash=_chain(5)[-1].hash)
    assert caught.value.sequence == 4


def test_a_deleted_middle_entry_is_reported_missing() -> None:
    entries = _chain(5)
    del entries[1]
    with pytest.raises(AuditChainError) as caught:
        verify_chain(entries, head_seq=5, head_hash=_chain(5)[-1].hash)
    assert caught.value.sequence == 2
    assert "audit entry 2 is missing" in str(caught.value)


def test_deleting_the_newest_entries_is_caught_by_the_head() -> None:
    full = _chain(5)
    with pytest.raises(AuditChainError) as caught:
        verify_chain(full[:4], **_head(full))  # type: ignore[arg-type]
    assert caught.value.sequence == 5
    with pytest.raises(AuditChainError):
        verify_chain([], **_head(full))  # type: ignore[arg-type]


def test_reordered_entries_are_caught() -> None:
    entries = _chain(4)
    entries[1], entries[2] = entries[2], entries[1]
    with pytest.raises(AuditChainError) as caught:
        verify_chain(entries, **_head(_chain(4)))  # type: ignore[arg-type]
    assert caught.value.sequence == 2


def test_entry_hash_covers_every_field() -> None:
    base = {
        "seq": 1,
        "at": "t",
        "actor": "a",
        "action": "x",
        "subject": "s",
        "details": "{}",
        "reason": "r",
        "prev_hash": GENESIS_HASH,
    }
    original = entry_hash(**base)  # type: ignore[arg-type]
    for key, value in base.items():
        changed = dict(base)
        changed[key] = 2 if key == "seq" else f"{value}!"
        assert entry_hash(**changed) != original, key  # type: ignore[arg-type]


# -- hashing a model folder --------------------------------------------------------------


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


@pytest.mark.parametrize(
    ("algorithm", "reference"),
    [
        ("sha256", lambda b: hashlib.sha256(b).hexdigest()),
        ("blake2b", lambda b: hashlib.blake2b(b).hexdigest()),
    ],
)
def test_hash_file_matches_hashlib(tmp_path: Path, algorithm: str, reference: object) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    digest, size = hash_file(path, algorithm, buffer=bytearray(1024 * 1024))
    assert size == len(data)
    assert digest == Digest(algorithm, reference(data))  # type: ignore[operator]


def test_hash_file_blake3_matches_reference(tmp_path: Path) -> None:
    blake3 = pytest.importorskip("blake3")
    data = os.urandom(1024 * 1024 + 1)
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    digest, _ = hash_file(path, "blake3")
    assert digest.hex == blake3.blake3(data).hexdigest()


def test_hash_model_lists_files_in_manifest_order_and_ignores_git(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "m",
        {
            "a.d": b"1",
            "a-c": b"2",
            "a/b": b"3",
            ".git/HEAD": b"ref",
            ".gitignore": b"*.pyc",
            "sub/.git": b"kept: only root entries are ignored",
        },
    )
    names = [f.name for f in list_model_files(root)]
    assert names == ["a/b", "a-c", "a.d", "sub/.git"]
    manifest = hash_model(root)
    assert [f.path for f in manifest] == names
    assert manifest.by_path()["a/b"].digest == Digest.of_bytes(b"3")
    # Serial and parallel hashing agree.
    assert hash_model(root, workers=1) == hash_model(root, workers=4)


def test_ignore_paths_relative_and_absolute(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"w.bin": b"w", "model.sig": b"s", "docs/x": b"x"})
    names = [f.name for f in list_model_files(root, ignore_paths=["docs", root / "model.sig"])]
    assert names == ["w.bin"]
    # A path outside the model is ignored silently.
    assert len(list_model_files(root, ignore_paths=[tmp_path / "elsewhere"])) == 3


def test_a_single_file_model_is_named_dot(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights")
    manifest = hash_model(path)
    assert [f.path for f in manifest] == ["."]
    assert manifest.is_single_file


def test_symlinks_are_refused_unless_allowed_and_never_outside(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"secret")
    root = _tree(tmp_path / "m", {"w.bin": b"w"})
    (root / "inside").symlink_to(root / "w.bin")
    with pytest.raises(UnsafePathError, match="symlink"):
        list_model_files(root)
    names = [f.name for f in list_model_files(root, allow_symlinks=True)]
    assert names == ["inside", "w.bin"]
    (root / "escape").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside the model folder"):
        list_model_files(root, allow_symlinks=True)
    (root / "escape").unlink()
    (root / "up").symlink_to(Path("..") / "secret")
    with pytest.raises(UnsafePathError, match="outside the model folder"):
        list_model_files(root, allow_symlinks=True)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"w.bin": b"w"})
    os.mkfifo(root / "pipe")
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            hash_model(root)
        except BaseException as e:  # recorded and checked below
            outcome.append(e)
        else:
            outcome.append(None)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "hashing a folder holding a FIFO blocked"
    assert isinstance(outcome[0], UnsafePathError)
    with pytest.raises(UnsafePathError, match="not a regular file"):
        hash_file(root / "pipe")


def test_a_missing_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        list_model_files(tmp_path / "nope")
