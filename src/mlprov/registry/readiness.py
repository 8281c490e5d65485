"""Whether this process can serve: the metadata store answers a query and the artefact
store answers a lookup (``/readyz`` of the server; a load balancer stops sending requests
to a replica that is not ready)."""

from __future__ import annotations

from mlprov.registry._context import RegistryContext

__all__ = ["check_ready"]

#: A key no blob has (its bytes would have to hash to zero): looking it up touches the
#: artefact store without reading or writing anything.
_PROBE_KEY = "0" * 64


def check_ready(context: RegistryContext) -> None:
    """Raise StorageError (one line) when either store cannot be reached."""
    with context.metadata.read() as tx:
        tx.audit_head()
    context.artifacts.exists(_PROBE_KEY)
