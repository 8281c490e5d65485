"""Request size and rate limits of the HTTP API, in one frozen object each."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter", "ServerLimits"]


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per caller: ``burst`` requests at once, refilled at
    ``requests_per_second``. Callers are tokens (by id); unauthenticated requests are
    limited per client address, before their credentials are even looked up. The default
    is generous (a serving fleet often resolves through one token); set a lower one
    for tokens given to people."""

    requests_per_second: float = 1000.0
    burst: int = 2000

    def __post_init__(self) -> None:
        if self.requests_per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what one request may send."""

    #: Largest body of any request but a blob upload (JSON, bundles, policy files).
    max_body_bytes: int = 16 * 1024 * 1024
    #: Largest blob one ``PUT /api/v1/blobs/{sha256}`` (or archive one
    #: ``POST /api/v1/imports``) may upload.
    max_blob_bytes: int = 64 * 1024 * 1024 * 1024
    #: Per-caller request rate; None switches rate limiting off.
    rate_limit: RateLimit | None = RateLimit()


class RateLimiter:
    """Token buckets in this process (each server process limits on its own, so N
    replicas allow up to N times the rate in total: docs/server.md)."""

    #: Buckets kept at most; the longest idle are dropped first when there are more.
    MAX_CALLERS = 10_000

    def __init__(self, limit: RateLimit) -> None:
        self._limit = limit
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> float | None:
        """Take one request from ``caller``'s bucket: None if allowed, else the seconds
        until one is available (for ``Retry-After``)."""
        now = time.monotonic()
        rate, burst = self._limit.requests_per_second, float(self._limit.burst)
        with self._lock:
            tokens, last = self._buckets.pop(caller, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                allowed = True
            else:
                self._buckets[caller] = (tokens, now)
                allowed = False
            while len(self._buckets) > self.MAX_CALLERS:
                self._buckets.pop(next(iter(self._buckets)))
        return None if allowed else (1.0 - tokens) / rate
