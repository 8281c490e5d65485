"""The audit log on SQLite and PostgreSQL: every mutation appends one chained entry, and
tampering with the rows directly in the database (outside mlprov) makes
``mlprov audit verify`` exit 1 naming the first broken entry."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlprov.audit import entry_hash
from mlprov.errors import AuditChainError
from support.registry_env import RegistryEnv, execute, make_model, one_line_error

Row = dict[str, Any]


COLUMNS = ("seq", "at", "actor", "action", "subject", "details", "reason", "prev_hash", "hash")


def audit_row(reg: RegistryEnv, seq: int) -> Row:
    rows = execute(reg, f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE seq = ?", seq)
    return dict(zip(COLUMNS, rows[0], strict=True))


@pytest.fixture
def history(reg: RegistryEnv, tmp_path: Path) -> RegistryEnv:
    """A registry with eight audit entries."""
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "a", {"w.bin": b"a"}), "m")  # 1, 2
        registry.register(make_model(tmp_path / "b", {"w.bin": b"b"}), "m")  # 3
        registry.set_alias("m", "prod", 2, reason="launch")  # 4
        registry.set_alias("m", "prod", 1, reason="regression")  # 5
        registry.set_stage("m", 1, "Production")  # 6
        registry.tag_version("m/1", {"team": "risk"})  # 7
        registry.tag_model("m", {"owner": "risk"})  # 8
        assert registry.verify_audit() == 8
    finally:
        registry.close()
    return reg


def test_every_mutation_appends_one_chained_entry(history: RegistryEnv) -> None:
    registry = history.registry()
    try:
        entries = registry.audit_log()
    finally:
        registry.close()
    assert [(e.seq, e.action, e.subject) for e in entries] == [
        (1, "model.create", "m"),
        (2, "version.register", "m/1"),
        (3, "version.register", "m/2"),
        (4, "alias.set", "m@prod"),
        (5, "alias.rollback", "m@prod"),
        (6, "stage.set", "m/1"),
        (7, "version.tag", "m/1"),
        (8, "model.tag", "m"),
    ]
    assert entries[0].prev_hash == "0" * 64
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev_hash == previous.hash
    assert all(e.actor == "tester@ci" for e in entries)
    assert json.loads(entries[4].details) == {
        "from": 2,
        "to": 1,
        "generation": 2,
        "digest": json.loads(entries[1].details)["digest"],
    }
    assert entries[4].reason == "regression"
    result = history.cli("audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "8 entries" in result.stdout


def _edit(column: str, value: str, seq: int) -> Callable[[RegistryEnv], None]:
    def tamper(reg: RegistryEnv) -> None:
        execute(reg, f"UPDATE audit_log SET {column} = ? WHERE seq = ?", value, seq)

    return tamper


def _delete(seq: int | None) -> Callable[[RegistryEnv], None]:
    def tamper(reg: RegistryEnv) -> None:
        last = execute(reg, "SELECT MAX(seq) FROM audit_log")[0][0]
        execute(reg, "DELETE FROM audit_log WHERE seq = ?", seq if seq is not None else last)

    return tamper


def _edit_and_rehash(reg: RegistryEnv) -> None:
    """A careful forger recomputes the edited entry's own hash: the next link breaks."""
    row = audit_row(reg, 4)
    row["reason"] = "approved by the board"
    new_hash = entry_hash(**{k: v for k, v in row.items() if k != "hash"})
    execute(reg, "UPDATE audit_log SET reason = ?, hash = ? WHERE seq = 4", row["reason"], new_hash)


def _append_forged(reg: RegistryEnv) -> None:
    """An entry appended behind mlprov's back, correctly chained, but the head is not moved."""
    last = audit_row(reg, 8)
    row = {
        "seq": 9,
        "at": last["at"],
        "actor": "mallory@ci",
        "action": "alias.set",
        "subject": "m@prod",
        "details": "{}",
        "reason": "",
        "prev_hash": last["hash"],
    }
    row["hash"] = entry_hash(**row)
    placeholders = ", ".join("?" for _ in COLUMNS)
    execute(
        reg,
        f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({placeholders})",
        *(row[c] for c in COLUMNS),
    )


# The cases the CLI must report (exit 1, one line naming the entry) ...
CLI_TAMPERING: dict[str, tuple[Callable[[RegistryEnv], None], int]] = {
    "edit action": (_edit("action", "alias.set", 5), 5),
    "edit details": (_edit("details", '{"from":2,"generation":2,"to":2}', 5), 5),
    "delete a middle entry": (_delete(3), 3),
    "delete the last entry": (_delete(None), 8),
}
# ... and more, checked through the API (the same verify_audit the CLI calls).
API_TAMPERING: dict[str, tuple[Callable[[RegistryEnv], None], int]] = {
    "edit subject": (_edit("subject", "other@prod", 4), 4),
    "edit actor": (_edit("actor", "someone@else", 1), 1),
    "edit reason": (_edit("reason", "", 5), 5),
    "edit time": (_edit("at", "2001-01-01T00:00:00.000000Z", 8), 8),
    "edit prev_hash": (_edit("prev_hash", "f" * 64, 2), 2),
    "delete the first entry": (_delete(1), 1),
    "edit and rehash": (_edit_and_rehash, 5),
}


@pytest.mark.parametrize("case", CLI_TAMPERING.keys())
def test_tampering_in_the_database_fails_audit_verify(history: RegistryEnv, case: str) -> None:
    tamper, seq = CLI_TAMPERING[case]
    before = history.snapshot()
    tamper(history)
    result = history.cli("audit", "verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"audit entry {seq} " in one_line_error(result.stderr) + " "
    # Verifying reports; it repairs nothing and hides nothing.
    after = history.snapshot()
    assert after["audit_head"] == before["audit_head"]


@pytest.mark.parametrize("case", API_TAMPERING.keys())
def test_more_tampering_is_found_at_the_right_entry(history: RegistryEnv, case: str) -> None:
    tamper, seq = API_TAMPERING[case]
    tamper(history)
    registry = history.registry()
    try:
        with pytest.raises(AuditChainError) as caught:
            registry.verify_audit()
    finally:
        registry.close()
    assert caught.value.sequence == seq
    assert f"audit entry {seq} " in str(caught.value) + " "


def test_an_appended_entry_is_named(history: RegistryEnv) -> None:
    _append_forged(history)
    registry = history.registry()
    try:
        with pytest.raises(AuditChainError) as caught:
            registry.verify_audit()
    finally:
        registry.close()
    assert caught.value.sequence == 9
    assert "audit entry 9 " in str(caught.value)


def test_a_restored_row_verifies_again(history: RegistryEnv) -> None:
    """The check is about content: putting the original bytes back makes the chain whole."""
    original = audit_row(history, 6)
    _edit("details", '{"from":"None","to":"Archived"}', 6)(history)
    registry = history.registry()
    try:
        with pytest.raises(AuditChainError, match="audit entry 6"):
            registry.verify_audit()
        execute(history, "UPDATE audit_log SET details = ? WHERE seq = 6", original["details"])
        assert registry.verify_audit() == 8
    finally:
        registry.close()


def _edit_rehash_and_relink(reg: RegistryEnv) -> None:
    """A forger edits entry 4, recomputes its hash and rewrites entry 5's previous-hash
    field to match: entry 5's own hash covers that field, so entry 5 no longer verifies."""
    _edit_and_rehash(reg)
    execute(reg, "UPDATE audit_log SET prev_hash = ? WHERE seq = 5", audit_row(reg, 4)["hash"])


API_TAMPERING["edit, rehash and relink the next entry"] = (_edit_rehash_and_relink, 5)


def _sql(statement: str) -> Callable[[RegistryEnv], None]:
    def tamper(reg: RegistryEnv) -> None:
        execute(reg, statement)

    return tamper


# Rows the chain vouches for although they are not audit rows: the pointers and histories.
STATE_TAMPERING: dict[str, tuple[Callable[[RegistryEnv], None], str]] = {
    "alias moved": (
        _sql("UPDATE aliases SET version_id = (SELECT id FROM versions WHERE number = 2)"),
        "alias m@prod is version 2 at generation 2 in the database, but the audit log says "
        "version 1 at generation 2",
    ),
    "alias generation": (
        _sql("UPDATE aliases SET generation = 7"),
        "alias m@prod is version 1 at generation 7",
    ),
    "alias deleted": (_sql("DELETE FROM aliases"), "alias m@prod is absent in the database"),
    "alias history edited": (
        _sql("UPDATE alias_history SET reason = 'approved' WHERE kind = 'rollback'"),
        "alias history row 2 (m@prod) differs",
    ),
    "alias history row removed": (
        _sql("DELETE FROM alias_history WHERE kind = 'rollback'"),
        "alias history row 2 (m@prod) differs from the audit log: no row in the database",
    ),
    "stage history edited": (
        _sql("UPDATE stage_history SET to_stage = 'Staging'"),
        "stage history row 1 differs",
    ),
    "stage edited": (
        _sql("UPDATE versions SET stage = 'Production' WHERE number = 2"),
        "m/2 is in stage Production in the database, but the audit log says None",
    ),
}


@pytest.mark.parametrize("case", STATE_TAMPERING.keys())
def test_pointer_and_history_edits_in_the_database_fail_audit_verify(
    history: RegistryEnv, case: str
) -> None:
    tamper, words = STATE_TAMPERING[case]
    tamper(history)
    before = history.snapshot()
    result = history.cli("audit", "verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert words in one_line_error(result.stderr)
    assert history.snapshot() == before


def _rewrite_from(reg: RegistryEnv, seq: int, **changes: str) -> None:
    """A thorough forger: edit entry ``seq``, recompute every later hash and link, and
    move the head row, so the chain alone verifies again."""
    last = execute(reg, "SELECT MAX(seq) FROM audit_log")[0][0]
    prev = audit_row(reg, seq - 1)["hash"] if seq > 1 else "0" * 64
    for n in range(seq, last + 1):
        row = audit_row(reg, n)
        row.update(changes if n == seq else {})
        row["prev_hash"] = prev
        row["hash"] = entry_hash(**{k: v for k, v in row.items() if k != "hash"})
        execute(
            reg,
            "UPDATE audit_log SET reason = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            row["reason"],
            row["prev_hash"],
            row["hash"],
            n,
        )
        prev = row["hash"]
    execute(reg, "UPDATE audit_head SET seq = ?, hash = ?", last, prev)


def _truncate_to(reg: RegistryEnv, keep: int) -> None:
    execute(reg, "DELETE FROM audit_log WHERE seq > ?", keep)
    execute(reg, "UPDATE audit_head SET seq = ?, hash = ?", keep, audit_row(reg, keep)["hash"])


@pytest.fixture
def checkpointed(history: RegistryEnv, tmp_path: Path) -> tuple[RegistryEnv, Path, Path]:
    """The eight-entry history, checkpointed (entry 9 records the checkpoint), then one
    more change (entry 10)."""
    private, public = tmp_path / "registry.pem", tmp_path / "registry.pub"
    history.cli("keys", "generate", "--out", str(private), check=True)
    history.cli("keys", "public", str(private), "--out", str(public), check=True)
    mark = tmp_path / "checkpoint.json"
    made = history.cli("audit", "checkpoint", "--key", str(private), "--out", str(mark))
    assert made.returncode == 0, made.stderr
    registry = history.registry()
    try:
        registry.tag_model("m", {"after": "checkpoint"})
    finally:
        registry.close()
    return history, mark, public


def test_a_log_that_only_grew_extends_its_checkpoint(
    checkpointed: tuple[RegistryEnv, Path, Path],
) -> None:
    reg, mark, public = checkpointed
    result = reg.cli("audit", "verify", "--checkpoint", str(mark), "--key", str(public))
    assert result.returncode == 0, result.stderr
    assert "10 entries" in result.stdout
    payload = json.loads(mark.read_text())["dsseEnvelope"]["payload"]
    statement = json.loads(base64.b64decode(payload))
    assert statement["predicate"]["sequence"] == 8
    assert statement["predicateType"] == "https://mlprov.dev/audit-checkpoint/v1"


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (lambda reg: _truncate_to(reg, 6), "audit log truncated: the checkpoint"),
        (lambda reg: _rewrite_from(reg, 3, reason="nothing to see"), "audit entry 8 was rewritten"),
    ],
    ids=["truncated below the checkpoint", "rewritten and rehashed"],
)
def test_truncation_and_rewriting_after_a_checkpoint_are_found(
    checkpointed: tuple[RegistryEnv, Path, Path], tamper: Any, words: str
) -> None:
    reg, mark, public = checkpointed
    tamper(reg)
    # The forger recomputed every hash and the head: the chain alone verifies ...
    registry = reg.registry()
    try:
        registry.verify_audit()
    finally:
        registry.close()
    # ... but not against the checkpoint kept elsewhere.
    before = reg.snapshot()
    result = reg.cli("audit", "verify", "--checkpoint", str(mark), "--key", str(public))
    assert result.returncode == 1, result.stdout + result.stderr
    assert words in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_a_checkpoint_needs_the_trust_it_was_signed_with(
    checkpointed: tuple[RegistryEnv, Path, Path], tmp_path: Path
) -> None:
    reg, mark, _public = checkpointed
    other = tmp_path / "other.pem"
    reg.cli("keys", "generate", "--out", str(other), check=True)
    reg.cli("keys", "public", str(other), "--out", str(tmp_path / "other.pub"), check=True)
    wrong = reg.cli(
        "audit", "verify", "--checkpoint", str(mark), "--key", str(tmp_path / "other.pub")
    )
    assert wrong.returncode == 1, wrong.stderr
    assert "wrong key" in one_line_error(wrong.stderr)
    untrusted = reg.cli("audit", "verify", "--checkpoint", str(mark))
    assert untrusted.returncode == 2, untrusted.stderr
    one_line_error(untrusted.stderr)
