"""Registry events and their delivery to webhooks (the edges layer).

* which audit actions are events and the exact JSON each becomes (:func:`event_for`);
* what a subscription may say and which events it receives (:func:`subscription_matches`);
* one signed POST to one receiver (:class:`WebhookPoster`), always outside any
  transaction.

The orchestration (outbox fan-out, claims, retries) is a registry use case
(:mod:`mlprov.registry.webhooks`): it needs the stores, which this layer cannot import
(docs/adr/0046-webhooks-outbox-and-dispatcher.md).
"""

from __future__ import annotations

from mlprov.events._delivery import (
    DeliveryOutcome,
    WebhookPoster,
    WebhookSettings,
    backoff_delay,
    signature,
)
from mlprov.events._subscriptions import (
    MAX_URL_LENGTH,
    check_event_types,
    check_model_patterns,
    check_webhook_url,
    new_secret,
    subscription_matches,
)
from mlprov.events._types import EVENT_TYPES, NewEvent, event_for, event_type_for, model_of

__all__ = [
    "EVENT_TYPES",
    "MAX_URL_LENGTH",
    "DeliveryOutcome",
    "NewEvent",
    "WebhookPoster",
    "WebhookSettings",
    "backoff_delay",
    "check_event_types",
    "check_model_patterns",
    "check_webhook_url",
    "event_for",
    "event_type_for",
    "model_of",
    "new_secret",
    "signature",
    "subscription_matches",
]
