"""Posting one event to one receiver, signed; never inside a transaction.

The signature scheme (docs/webhooks.md, "Verifying a delivery"): the header
``X-Mlprov-Signature: sha256=<hex>`` carries HMAC-SHA256, keyed with the subscription's
secret, over ``"<X-Mlprov-Timestamp>.<body>"``. Binding the timestamp into the MAC lets a
receiver refuse replays of old deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from mlprov._version import __version__
from mlprov.errors import InvalidInputError

__all__ = [
    "DeliveryOutcome",
    "WebhookPoster",
    "WebhookSettings",
    "backoff_delay",
    "signature",
]

_MAX_ERROR = 200


@dataclass(frozen=True)
class WebhookSettings:
    """How the dispatcher delivers: each POST's ``timeout`` (seconds), at most
    ``max_attempts`` tries per delivery with exponential back-off from ``backoff_base``
    doubling up to ``backoff_cap`` seconds (each delay jittered to between half and all
    of it), ``batch_size`` deliveries claimed per pass, ``concurrency`` POSTs at once."""

    timeout: float = 10.0
    max_attempts: int = 8
    backoff_base: float = 30.0
    backoff_cap: float = 3600.0
    batch_size: int = 32
    concurrency: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= 300:
            raise InvalidInputError("webhook timeout must be between 0 and 300 seconds")
        if not 1 <= self.max_attempts <= 100:
            raise InvalidInputError("webhook max attempts must be between 1 and 100")
        if not 0 <= self.backoff_base <= self.backoff_cap:
            raise InvalidInputError("webhook back-off must be 0 <= base <= cap")
        if self.batch_size < 1 or self.concurrency < 1:
            raise InvalidInputError("webhook batch size and concurrency must be at least 1")

    @property
    def lease(self) -> timedelta:
        """How long a claim lasts: well beyond one POST, so a live dispatcher never loses
        its claim mid-request, yet a crashed one's deliveries are retried."""
        return timedelta(seconds=2 * self.timeout + 60)


def backoff_delay(settings: WebhookSettings, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed try: base * 2**(attempts-1), at
    most the cap, jittered to between half and all of it so receivers that come back
    are not hit by every retry at once."""
    full = min(settings.backoff_cap, settings.backoff_base * 2.0 ** max(attempts - 1, 0))
    return full * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Mlprov-Signature`` value: ``sha256=`` and HMAC-SHA256 over
    ``"<timestamp>.<body>"`` keyed with the subscription's secret."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one POST gave: delivered on a 2xx; ``status`` when an answer came;
    ``error`` one line saying why not (never a secret, never the body)."""

    delivered: bool
    status: int | None
    error: str | None


class WebhookPoster:
    """POSTs events with one HTTP client (connection reuse); no redirects followed."""

    def __init__(self, settings: WebhookSettings) -> None:
        import httpx  # noqa: PLC0415 - only the dispatcher needs it

        self.settings = settings
        self._client = httpx.Client(
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=False,
            headers={"User-Agent": f"mlprov-webhooks/{__version__}"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> WebhookPoster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def post(
        self, url: str, secret: str, body: bytes, *, event_type: str, delivery_id: int
    ) -> DeliveryOutcome:
        import httpx  # noqa: PLC0415

        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Mlprov-Event": event_type,
            "X-Mlprov-Delivery": str(delivery_id),
            "X-Mlprov-Timestamp": timestamp,
            "X-Mlprov-Signature": signature(secret, timestamp, body),
        }
        try:
            # Streamed and closed unread: the answer's status is all that counts, and a
            # receiver cannot hold the dispatcher by sending an endless body.
            with self._client.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
        except httpx.TimeoutException:
            return DeliveryOutcome(False, None, f"timed out after {self.settings.timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError, OSError) as e:
            # Every way one receiver can fail is an attempt that failed, recorded on its
            # delivery; none may abort the pass and leave the others unrecorded.
            return DeliveryOutcome(False, None, _one_line(type(e).__name__, e))
        if 200 <= status < 300:
            return DeliveryOutcome(True, status, None)
        if 300 <= status < 400:
            return DeliveryOutcome(False, status, f"HTTP {status} (redirects are not followed)")
        return DeliveryOutcome(False, status, f"HTTP {status}")


def _one_line(kind: str, error: BaseException) -> str:
    text = " ".join(str(error).split())
    line = f"{kind}: {text}" if text else kind
    return line if len(line) <= _MAX_ERROR else line[: _MAX_ERROR - 1] + "…"
