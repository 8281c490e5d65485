"""Serving: signed alias resolution, the client's memory of it, and installed copies.

A pure engine over bytes, records and local files (no database, no network):

* :func:`sign_resolution` / :func:`verify_resolution`: the registry's signed answer to
  "what is ``name@alias`` now" (in-toto Statement v1 in DSSE, predicate type
  :data:`RESOLUTION_PREDICATE_TYPE`), signed with the registry's key;
* :class:`ResolutionState`: the highest generation seen per registry and alias, which
  refuses rollbacks, equivocation and expired (frozen) answers;
* :func:`install_record` / :func:`check_installed`: what an install wrote, and whether an
  installed copy still is that (``mlprov check-installed``, readiness probes).

Stable API (this module's ``__all__``)::

    sign_resolution(signer, *, name, alias, version, manifest_digest, generation,
                    issued_at, ttl) -> bytes
    verify_resolution(data, trust, now, *, limits) -> Resolution
    ResolutionState(path=None).accept(resolution, now) -> SeenResolution
    check_installed(folder, *, full=False, limits) -> InstalledCopy
"""

from __future__ import annotations

from mlprov.serving._installed import (
    INSTALL_RECORD_NAME,
    InstalledCopy,
    check_installed,
    install_record,
)
from mlprov.serving._resolution import (
    MAX_RESOLUTION_TTL,
    RESOLUTION_PREDICATE_TYPE,
    Resolution,
    registry_id_of,
    resolution_statement,
    sign_resolution,
    verify_resolution,
)
from mlprov.serving._state import DEFAULT_STATE_NAME, ResolutionState, SeenResolution

__all__ = [
    "DEFAULT_STATE_NAME",
    "INSTALL_RECORD_NAME",
    "MAX_RESOLUTION_TTL",
    "RESOLUTION_PREDICATE_TYPE",
    "InstalledCopy",
    "Resolution",
    "ResolutionState",
    "SeenResolution",
    "check_installed",
    "install_record",
    "registry_id_of",
    "resolution_statement",
    "sign_resolution",
    "verify_resolution",
]
