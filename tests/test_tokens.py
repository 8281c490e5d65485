"""Bearer tokens and authorisation: created with the secret shown once and stored hashed,
listed without secrets, revoked and expired tokens refused, every role x action decided
as docs/tokens.md says, model patterns scoping each principal, and the principal as the
audit log's actor. Refused commands change nothing."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mlprov.access import (
    ROLE_ACTIONS,
    Action,
    Principal,
    Role,
    allows,
    authorize,
    check_model_patterns,
)
from mlprov.durations import parse_duration
from mlprov.errors import (
    AuditChainError,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from support.bad_input import Case, assert_refused
from support.registry_env import RegistryEnv, execute, make_model, one_line_error

# The roles table of docs/tokens.md, written out here (not derived from ROLE_ACTIONS), so
# a change to either is caught.
ALLOWED = {
    "reader": {"read"},
    "publisher": {"read", "register", "sign", "attest"},
    "evaluator": {"read", "attest"},
    "approver": {"read", "approve"},
    "promoter": {"read", "move", "waive"},
    "admin": {a.value for a in Action},
}
ACTIONS = [
    "read",
    "register",
    "sign",
    "attest",
    "approve",
    "waive",
    "move",
    "revoke",
    "policy",
    "tokens",
    "webhooks",
    "audit",
]
REGISTRY_WIDE = {"policy", "tokens", "webhooks", "audit"}


def _random_part(secret: str) -> str:
    """What follows ``mlp_tok_<12 hex>_``: the 43 random characters (which may hold ``_``)."""
    return secret[len("mlp_tok_0123456789ab_") :]


# -- the engine: roles, actions, patterns ---------------------------------------------------


def test_the_roles_and_actions_are_the_documented_ones() -> None:
    assert [r.value for r in Role] == list(ALLOWED)
    assert [a.value for a in Action] == ACTIONS
    assert {r.value: {a.value for a in ROLE_ACTIONS[r]} for r in Role} == ALLOWED
    assert str(Role.PROMOTER) == "promoter"
    assert f"{Action.MOVE}" == "move"
    assert Role("reader") is Role.READER
    assert Role.parse(" Admin ") is Role.ADMIN


@pytest.mark.parametrize("role", list(ALLOWED))
@pytest.mark.parametrize("action", ACTIONS)
def test_every_role_and_action(role: str, action: str) -> None:
    everywhere = Principal("p", Role(role))
    # A model-scoped request, except for the actions that only exist registry-wide.
    model = None if action in REGISTRY_WIDE else "credit-risk"
    if action in ALLOWED[role]:
        authorize(everywhere, Action(action), model)
        assert allows(everywhere, Action(action), model)
        return
    with pytest.raises(PermissionDeniedError) as refused:
        authorize(everywhere, Action(action), model)
    assert not allows(everywhere, Action(action), model)
    message = str(refused.value)
    assert f"role {role} may not {action}" in message
    assert ("credit-risk" in message) == (model is not None)
    assert "\n" not in message
    assert refused.value.exit_code == 6
    assert refused.value.http_status == 403


@pytest.mark.parametrize(
    ("model", "allowed"),
    [
        ("credit-risk", True),
        ("credit-", True),
        ("fraud-1", True),
        ("fraud-12", False),
        ("a-model", True),
        ("c-model", False),
        ("debit-risk", False),
        ("xcredit-risk", False),
    ],
)
def test_model_patterns_scope_a_principal(model: str, allowed: bool) -> None:
    scoped = Principal(
        "ci", Role.PUBLISHER, ("credit-*", "fraud-?", "[ab]-model"), token_id="tok_0123456789ab"
    )
    assert allows(scoped, Action.REGISTER, model) is allowed
    assert allows(scoped, Action.READ, model) is allowed
    if allowed:
        authorize(scoped, Action.SIGN, model)
        return
    with pytest.raises(PermissionDeniedError) as refused:
        authorize(scoped, Action.SIGN, model)
    message = str(refused.value)
    assert "token:ci (tok_0123456789ab)" in message
    assert f"sign on model {model!r}" in message
    assert "credit-*, fraud-?, [ab]-model" in message


def test_a_hostile_model_name_is_shown_escaped_and_bounded() -> None:
    scoped = Principal("ci", Role.READER, ("credit-*",))
    with pytest.raises(PermissionDeniedError) as refused:
        authorize(scoped, Action.READ, "\x1b[31mred\n" * 1000)
    message = str(refused.value)
    assert "\x1b" not in message
    assert "\\x1b[31mred" in message
    assert len(message) < 1000


def test_registry_wide_actions_need_a_principal_on_every_model() -> None:
    scoped_admin = Principal("ops", Role.ADMIN, ("credit-*",))
    for action in (Action.POLICY, Action.TOKENS, Action.WEBHOOKS, Action.AUDIT):
        for model in (None, "credit-risk"):
            with pytest.raises(PermissionDeniedError, match=r"registry as a whole.*'\*'"):
                authorize(scoped_admin, action, model)
    # Revoking a version is model-scoped; revoking a key or identity (no model) is not.
    authorize(scoped_admin, Action.REVOKE, "credit-risk")
    with pytest.raises(PermissionDeniedError, match="registry as a whole"):
        authorize(scoped_admin, Action.REVOKE)
    # Nor is reading the registry as a whole (the audit log, every model's status).
    with pytest.raises(PermissionDeniedError, match="registry as a whole"):
        authorize(Principal("r", Role.READER, ("credit-*",)), Action.READ)
    admin = Principal("root", Role.ADMIN)
    for action in Action:
        authorize(admin, action)
        authorize(admin, action, "any-model")
    # "**" matches every name too, but only "*" itself says "the whole registry".
    assert not allows(Principal("x", Role.ADMIN, ("**",)), Action.POLICY)


def test_the_actor_names_the_token() -> None:
    assert Principal("ci-publisher", Role.PUBLISHER, token_id="tok_1a2b3c4d5e6f").actor == (
        "token:ci-publisher (tok_1a2b3c4d5e6f)"
    )
    assert Principal("alice@example.com", Role.ADMIN).actor == "alice@example.com"
    # A role by name and a single pattern are what they say.
    named = Principal("r", "reader", "credit-*")  # type: ignore[arg-type]
    assert named == Principal("r", Role.READER, ("credit-*",))
    assert allows(named, Action.READ, "credit-risk")
    assert not allows(named, Action.READ, "c")


@pytest.mark.parametrize(
    "patterns",
    [
        [],
        [""],
        ["Credit-*"],
        ["a/b"],
        ["a b"],
        ["["],
        ["a[b"],
        ["a[]"],
        ["x" * 129],
        [f"m{chr(0)}"],
    ],
    ids=[
        "none",
        "empty",
        "upper",
        "slash",
        "space",
        "bracket",
        "open",
        "empty-class",
        "long",
        "nul",
    ],
)
def test_bad_model_patterns_are_refused(patterns: list[str]) -> None:
    with pytest.raises(InvalidInputError, match="pattern"):
        check_model_patterns(patterns)


def test_model_patterns_are_kept_in_order_without_duplicates() -> None:
    assert check_model_patterns(["b-*", "a", "b-*", "[!x]?"]) == ("b-*", "a", "[!x]?")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(hours=24)),
        ("30d", timedelta(days=30)),
        ("1h30m", timedelta(minutes=90)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0h", "forever", "30", "1 day", "h", "30m1h", "-1d", "1.5h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="is not a duration"):
        parse_duration(text)


# -- the registry: create, list, revoke, authenticate ---------------------------------------


def test_tokens_are_created_listed_revoked_and_audited(reg: RegistryEnv) -> None:
    registry = reg.registry()
    try:
        issued = registry.create_token(
            "publisher", name="ci-publisher", models=["credit-*"], expires=timedelta(days=30)
        )
        admin = registry.create_token(Role.ADMIN, name="lead")
        token = issued.token
        assert token.id.startswith("tok_")
        assert len(token.id) == 16
        assert issued.secret.startswith(f"mlp_{token.id}_")
        assert (token.role, token.models, token.created_by) == (
            "publisher",
            ("credit-*",),
            "tester@ci",
        )
        assert token.expires_at is not None
        assert token.expires_at > token.created_at
        assert admin.token.models == ("*",)
        assert admin.token.expires_at is None
        assert issued.secret not in repr(issued)
        assert [t.id for t in registry.tokens()] == [token.id, admin.token.id]
        assert [t.state() for t in registry.tokens()] == ["active", "active"]

        revoked = registry.revoke_token(token.id, reason="rotated")
        assert (revoked.revoked_by, revoked.revoke_reason, revoked.state()) == (
            "tester@ci",
            "rotated",
            "revoked",
        )
        assert revoked.revoked_at is not None
        assert registry.tokens()[0] == revoked

        entries = registry.audit_log()
        assert [(e.action, e.subject, e.reason) for e in entries] == [
            ("token.create", f"token:{token.id}", ""),
            ("token.create", f"token:{admin.token.id}", ""),
            ("token.revoke", f"token:{token.id}", "rotated"),
        ]
        details = json.loads(entries[0].details)
        assert details == {
            "id": token.id,
            "name": "ci-publisher",
            "role": "publisher",
            "models": ["credit-*"],
            "expires_at": token.expires_at,
            # The digest binds the row to its entry for `audit verify` (ADR 0042).
            "secret_sha256": hashlib.sha256(issued.secret.encode()).hexdigest(),
        }
        logged = json.dumps([e.to_json() for e in entries])
        listed = json.dumps([t.to_json() for t in registry.tokens()])
        for secret in (issued.secret, admin.secret):
            assert len(_random_part(secret)) == 43
            for text in (logged, listed):
                assert _random_part(secret) not in text
            assert hashlib.sha256(secret.encode()).hexdigest() not in listed
        assert registry.verify_audit() == 3
    finally:
        registry.close()
    # Stored: the SHA-256 of the secret, never the secret itself.
    [(stored,)] = execute(reg, "SELECT secret_sha256 FROM tokens WHERE id = ?", token.id)
    assert stored == hashlib.sha256(issued.secret.encode()).hexdigest()
    everything = execute(reg, "SELECT * FROM tokens")
    assert issued.secret not in repr(everything)


def test_authentication_accepts_only_a_good_live_secret(reg: RegistryEnv) -> None:
    registry = reg.registry()
    try:
        good = registry.create_token("promoter", name="deployer", models=["credit-*", "fraud-?"])
        principal = registry.authenticate(good.secret)
        assert principal == Principal(
            "deployer", Role.PROMOTER, ("credit-*", "fraud-?"), token_id=good.token.id
        )
        assert principal.actor == f"token:deployer ({good.token.id})"

        prefix = f"mlp_{good.token.id}_"
        wrong = prefix + secrets.token_urlsafe(32)
        unknown = f"mlp_tok_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        expired = registry.create_token("reader", name="old", expires=timedelta(days=1))
        revoked = registry.create_token("reader", name="gone")
        registry.revoke_token(revoked.token.id, reason="left the team")
        tampered = registry.create_token("reader", name="tampered")
        cases = {
            "wrong secret, right id": (wrong, "unknown or its secret is wrong"),
            "unknown id": (unknown, "unknown or its secret is wrong"),
            "expired": (expired.secret, "expired at"),
            "revoked": (revoked.secret, "was revoked at"),
            "unknown role": (tampered.secret, "unknown role"),
            "empty": ("", "malformed token"),
            "bearer prefix": (f"Bearer {good.secret}", "malformed token"),
            "newline": (good.secret + "\n", "malformed token"),
            "truncated": (good.secret[:-1], "malformed token"),
            "too long": (good.secret + "A", "malformed token"),
            "upper-case id": (good.secret.replace("tok_", "TOK_"), "malformed token"),
            "not a string": (None, "malformed token"),
        }
    finally:
        registry.close()
    past = "2020-01-01T00:00:00.000000Z"
    execute(reg, "UPDATE tokens SET expires_at = ? WHERE id = ?", past, expired.token.id)
    execute(reg, "UPDATE tokens SET role = ? WHERE id = ?", "superuser", tampered.token.id)
    registry = reg.registry()
    try:
        before = (registry.tokens(), registry.audit_log())
        for name, (secret, words) in cases.items():
            with pytest.raises(AuthenticationError) as refused:
                registry.authenticate(secret)
            message = str(refused.value)
            assert words in message, name
            assert refused.value.exit_code == 6
            assert refused.value.http_status == 401
            if isinstance(secret, str) and len(secret) > 30:
                assert _random_part(secret) not in message, name
        # Authentication reads only: nothing written, not even an audit entry.
        assert (registry.tokens(), registry.audit_log()) == before
        assert [t.state() for t in registry.tokens()] == [
            "active",
            "expired",
            "revoked",
            "active",
        ]
        assert registry.authenticate(good.secret).role is Role.PROMOTER
    finally:
        registry.close()


def test_refused_token_changes_raise_and_change_nothing(reg: RegistryEnv) -> None:
    registry = reg.registry()
    try:
        kept = registry.create_token("reader", name="kept")
        registry.revoke_token(kept.token.id, reason="first")
        before = (registry.tokens(), registry.audit_log())
        refusals: list[tuple[Any, type[Exception], str]] = [
            (lambda: registry.create_token("root", name="x"), InvalidInputError, "unknown role"),
            (lambda: registry.create_token("reader", name="a b"), InvalidInputError, "name"),
            (lambda: registry.create_token("reader", name=""), InvalidInputError, "name"),
            (
                lambda: registry.create_token("reader", name="x", models=["A*"]),
                InvalidInputError,
                "pattern",
            ),
            (
                lambda: registry.create_token("reader", name="x", models=[]),
                InvalidInputError,
                "pattern",
            ),
            (
                lambda: registry.create_token("reader", name="x", expires=timedelta(0)),
                InvalidInputError,
                "expires",
            ),
            (
                lambda: registry.create_token("reader", name="x", expires=timedelta(days=3651)),
                InvalidInputError,
                "3650 days",
            ),
            (
                lambda: registry.revoke_token("tok_000000000000", reason="x"),
                NotFoundError,
                "not found",
            ),
            (lambda: registry.revoke_token("nope", reason="x"), InvalidInputError, "token id"),
            (lambda: registry.revoke_token(kept.token.id, reason=""), InvalidInputError, "reason"),
            (
                lambda: registry.revoke_token(kept.token.id, reason="a\nb"),
                InvalidInputError,
                "one line",
            ),
            (
                lambda: registry.revoke_token(kept.token.id, reason="again"),
                ConflictError,
                "already revoked",
            ),
        ]
        for call, error, words in refusals:
            with pytest.raises(error, match=words):
                call()
        assert (registry.tokens(), registry.audit_log()) == before
        # A single pattern given as a string is one pattern, not its characters.
        assert registry.create_token("reader", name="one", models="credit-*").token.models == (
            "credit-*",
        )
    finally:
        registry.close()


def test_acting_as_records_the_principal_as_actor(reg: RegistryEnv, tmp_path: Path) -> None:
    registry = reg.registry()
    try:
        publisher = registry.authenticate(
            registry.create_token("publisher", name="ci", models=["m"]).secret
        )
        promoter = registry.authenticate(registry.create_token("promoter", name="cd").secret)
        acting = registry.acting_as(publisher)
        assert acting.actor == publisher.actor
        assert registry.actor == "tester@ci"
        version = acting.register(make_model(tmp_path / "m"), "m")
        assert version.created_by == publisher.actor
        registry.acting_as(promoter).set_alias("m", "production", 1, reason="ship")
        acting.close()  # leaves the stores open: the registry it came from owns them
        [event] = registry.alias_history("m", "production")
        assert event.actor == promoter.actor
        actors = [(e.action, e.actor) for e in registry.audit_log()]
        assert actors[-2:] == [
            ("version.register", publisher.actor),
            ("alias.set", promoter.actor),
        ]
        assert registry.verify_audit() == len(actors)
    finally:
        registry.close()


_ROW = (
    "INSERT INTO tokens (id, name, role, models, secret_sha256, created_at, created_by) "
    "VALUES (?, 'backdoor', 'admin', '[\"*\"]', ?, '2026-01-01T00:00:00.000000Z', 'x')"
)
TAMPERING = {
    "digest swapped": (
        "UPDATE tokens SET secret_sha256 = ? WHERE name = 'lead'",
        ("0" * 64,),
        "differs from the audit log in secret_sha256",
    ),
    "role raised": (
        "UPDATE tokens SET role = 'admin' WHERE name = 'ci'",
        (),
        "differs from the audit log in role",
    ),
    "patterns widened": (
        "UPDATE tokens SET models = '[\"*\"]' WHERE name = 'ci'",
        (),
        "differs from the audit log in models",
    ),
    "expiry extended": (
        "UPDATE tokens SET expires_at = '2099-01-01T00:00:00.000000Z' WHERE name = 'ci'",
        (),
        "differs from the audit log in expires_at",
    ),
    "revocation undone": (
        "UPDATE tokens SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL "
        "WHERE name = 'gone'",
        (),
        "revoked_at, revoked_by, revoke_reason",
    ),
    "row added": (_ROW, ("tok_0123456789ab", "0" * 64), "not in the audit log"),
    "row deleted": ("DELETE FROM tokens WHERE name = 'lead'", (), "not in the database"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_audit_verify_finds_tokens_changed_outside_mlprov(reg: RegistryEnv, case: str) -> None:
    registry = reg.registry()
    try:
        registry.create_token("admin", name="lead")
        registry.create_token("publisher", name="ci", models=["credit-*"], expires=timedelta(1))
        gone = registry.create_token("reader", name="gone")
        registry.revoke_token(gone.token.id, reason="left")
        assert registry.verify_audit() == 4
    finally:
        registry.close()
    sql, params, words = TAMPERING[case]
    execute(reg, sql, *params)
    registry = reg.registry()
    try:
        with pytest.raises(AuditChainError, match=words):
            registry.verify_audit()
    finally:
        registry.close()
    result = reg.cli("audit", "verify")
    assert result.returncode == 1
    assert words in one_line_error(result.stderr)


# -- the command line -------------------------------------------------------------------------


def test_the_cli_shows_the_secret_once_and_never_again(reg: RegistryEnv) -> None:
    created = reg.cli(
        "token", "create", "--role", "publisher", "--name", "ci-publisher",
        "--models", "credit-*", "--models", "fraud-*", "--expires", "30d",
        check=True,
    )  # fmt: skip
    secret = created.stdout.strip()
    assert secret.startswith("mlp_tok_")
    assert created.stdout == secret + "\n"
    assert "shown only this once" in created.stderr
    assert secret not in created.stderr
    as_json = reg.cli("token", "create", "--role", "admin", "--name", "lead", "--json", check=True)
    issued = json.loads(as_json.stdout)
    assert issued["secret"].startswith(f"mlp_{issued['id']}_")
    assert (issued["role"], issued["models"], issued["expires_at"], issued["state"]) == (
        "admin",
        ["*"],
        None,
        "active",
    )

    registry = reg.registry()
    try:
        principal = registry.authenticate(secret)
        assert principal.models == ("credit-*", "fraud-*")
    finally:
        registry.close()

    listed = reg.cli("token", "list", "--json", check=True).stdout
    tokens = json.loads(listed)
    assert [(t["name"], t["role"], t["state"]) for t in tokens] == [
        ("ci-publisher", "publisher", "active"),
        ("lead", "admin", "active"),
    ]
    assert tokens[0]["expires_at"] is not None
    assert all("secret" not in t and "secret_sha256" not in t for t in tokens)
    table = reg.cli("token", "list", check=True).stdout
    assert principal.token_id is not None
    assert principal.token_id in table
    revoked = reg.cli("token", "revoke", principal.token_id, "--reason", "leaked", check=True)
    assert f"revoked {principal.token_id}" in revoked.stdout
    table = reg.cli("token", "list", "--wide", check=True).stdout
    assert "revoked" in table
    assert "never" in table

    everything = [
        listed,
        table,
        reg.cli("token", "list", "--json", check=True).stdout,
        reg.cli("audit", "log", "--json", check=True).stdout,
        reg.cli("audit", "log", "--wide", check=True).stdout,
    ]
    for text in everything:
        for shown in (secret, issued["secret"]):
            assert _random_part(shown) not in text
    verified = reg.cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr


def test_refused_token_commands_change_nothing(reg: RegistryEnv) -> None:
    live = reg.cli("token", "create", "--role", "reader", "--name", "r", "--json", check=True)
    live_id = json.loads(live.stdout)["id"]
    gone = reg.cli("token", "create", "--role", "reader", "--name", "g", "--json", check=True)
    gone_id = json.loads(gone.stdout)["id"]
    reg.cli("token", "revoke", gone_id, "--reason", "first", check=True)
    create = ["token", "create", "--name", "x"]
    cases: dict[str, Case] = {
        "unknown role": ([*create, "--role", "root"], 2, "unknown role 'root'"),
        "no role": (["token", "create", "--name", "x"], 2, "--role"),
        "no name": (["token", "create", "--role", "reader"], 2, "--name"),
        "bad name": (["token", "create", "--role", "reader", "--name", "a b"], 2, "token name"),
        "upper-case pattern": (
            [*create, "--role", "reader", "--models", "Credit-*"],
            2,
            "invalid model pattern",
        ),
        "path pattern": ([*create, "--role", "reader", "--models", "../x"], 2, "model pattern"),
        "empty pattern": ([*create, "--role", "reader", "--models", ""], 2, "model pattern"),
        "bad duration": ([*create, "--role", "reader", "--expires", "forever"], 2, "duration"),
        "zero duration": ([*create, "--role", "reader", "--expires", "0d"], 2, "longer than zero"),
        "too long": ([*create, "--role", "reader", "--expires", "3651d"], 2, "3650 days"),
        "unknown id": (["token", "revoke", "tok_000000000000", "--reason", "x"], 4, "not found"),
        "malformed id": (["token", "revoke", "tok_xyz", "--reason", "x"], 2, "token id"),
        "no reason": (["token", "revoke", live_id], 2, "reason"),
        "revoked twice": (["token", "revoke", gone_id, "--reason", "again"], 3, "already"),
    }
    registry = reg.registry()
    try:
        before = registry.tokens()
    finally:
        registry.close()
    assert_refused(reg, cases)
    registry = reg.registry()
    try:
        assert registry.tokens() == before
    finally:
        registry.close()


def test_two_racing_revocations_have_one_winner(reg: RegistryEnv) -> None:
    created = reg.cli("token", "create", "--role", "reader", "--name", "r", "--json", check=True)
    token_id = json.loads(created.stdout)["id"]
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "mlprov", "token", "revoke", token_id, "--reason", f"r{i}"],
            env=reg.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in racers]
    results = [(p.returncode, *out) for p, out in zip(racers, outputs, strict=True)]
    assert sorted(code for code, _, _ in results) == [0, 3], results
    registry = reg.registry()
    try:
        [token] = registry.tokens()
        assert token.state() == "revoked"
        revocations = [e for e in registry.audit_log() if e.action == "token.revoke"]
        assert [e.reason for e in revocations] == [token.revoke_reason]
        assert registry.verify_audit() == 2
    finally:
        registry.close()


def test_an_unknown_role_is_one_line(reg: RegistryEnv) -> None:
    result = reg.cli("token", "create", "--role", "boss", "--name", "x")
    assert result.returncode == 2
    assert one_line_error(result.stderr).endswith(
        "unknown role 'boss': use one of reader, publisher, evaluator, approver, promoter, admin"
    )
