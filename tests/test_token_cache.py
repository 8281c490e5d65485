"""The token cache a server uses (docs/adr/0049): a token row is reused for a bounded
time, never a decision. A wrong secret, an expired token and a revocation made through
the same registry are refused at once; a revocation made elsewhere is refused once the
cached row is older than the cache's seconds; without a cache every authentication reads
the store."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from mlprov.errors import AuthenticationError
from mlprov.registry.tokens import TokenCache
from support.registry_env import RegistryEnv


def test_a_revocation_here_is_refused_at_once_and_elsewhere_within_the_cache_time(
    reg: RegistryEnv,
) -> None:
    server = reg.registry()
    elsewhere = reg.registry()  # another process's registry: shares no cache
    try:
        server.cache_tokens(0.5)
        here = server.create_token("reader", name="here")
        there = server.create_token("reader", name="there")
        assert server.authenticate(here.secret).token_id == here.token.id
        assert server.authenticate(there.secret).token_id == there.token.id

        # Through the same registry (an acting_as view shares its cache): refused now.
        server.acting_as(server.authenticate(here.secret)).revoke_token(
            here.token.id, reason="left the team"
        )
        with pytest.raises(AuthenticationError, match="was revoked at"):
            server.authenticate(here.secret)

        # Elsewhere: the cached row is still used until it is 0.5 s old, then re-read.
        elsewhere.revoke_token(there.token.id, reason="leaked")
        revoked_at = time.monotonic()
        still = server.authenticate(there.secret)
        assert still.token_id == there.token.id
        assert time.monotonic() - revoked_at < 0.5  # accepted only inside the window
        time.sleep(0.6)
        with pytest.raises(AuthenticationError, match="was revoked at"):
            server.authenticate(there.secret)
    finally:
        elsewhere.close()
        server.close()


def test_a_cached_token_still_needs_its_secret_and_its_lifetime(reg: RegistryEnv) -> None:
    registry = reg.registry()
    try:
        cache = registry.cache_tokens(30)
        issued = registry.create_token("reader", name="short", expires=timedelta(hours=1))
        assert registry.authenticate(issued.secret).token_id == issued.token.id
        assert len(cache) == 1
        last = "B" if issued.secret[-1] == "A" else "A"
        with pytest.raises(AuthenticationError, match="unknown or its secret is wrong"):
            registry.authenticate(issued.secret[:-1] + last)
        # The row as cached, but its lifetime over: expiry is checked on every request.
        record, digest = cache.get(issued.token.id) or pytest.fail("the row is cached")
        past = (datetime.now(timezone.utc) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        cache.put(
            issued.token.id,
            (record.model_copy(update={"expires_at": past}), digest),
            time.monotonic(),
        )
        with pytest.raises(AuthenticationError, match="expired at"):
            registry.authenticate(issued.secret)
    finally:
        registry.close()


def test_without_a_cache_every_authentication_reads_the_store(reg: RegistryEnv) -> None:
    server = reg.registry()
    elsewhere = reg.registry()
    try:
        issued = server.create_token("reader", name="plain")
        assert server.authenticate(issued.secret).token_id == issued.token.id
        elsewhere.revoke_token(issued.token.id, reason="gone")
        with pytest.raises(AuthenticationError, match="was revoked at"):
            server.authenticate(issued.secret)
    finally:
        elsewhere.close()
        server.close()


def test_unknown_ids_are_never_kept_and_the_cache_is_bounded(reg: RegistryEnv) -> None:
    registry = reg.registry()
    try:
        cache = registry.cache_tokens(5)
        for _ in range(3):
            with pytest.raises(AuthenticationError, match="unknown or its secret is wrong"):
                registry.authenticate("mlp_tok_0123456789ab_" + "A" * 43)
        assert len(cache) == 0
        issued = registry.create_token("reader", name="one")
        registry.authenticate(issued.secret)
        row = cache.get(issued.token.id)
        assert row is not None
    finally:
        registry.close()
    ids = [f"tok_{i:012x}" for i in range(TokenCache.MAX_TOKENS + 5)]
    for token_id in ids:
        cache.put(token_id, row, time.monotonic())
    assert len(cache) == TokenCache.MAX_TOKENS
    assert cache.get(ids[0]) is None  # the oldest went first
    assert cache.get(ids[-1]) is not None


@pytest.mark.parametrize("seconds", [0, -1, 61, float("nan")])
def test_a_cache_time_out_of_bounds_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="at most 60 seconds"):
        TokenCache(seconds)
