"""mlprov: a model registry where every version is hashed, signed and carries provenance.

The public API is what ``__all__`` lists; modules whose names start with ``_`` are private.
Imports are lazy so that ``import mlprov`` stays cheap in serving containers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlprov._version import __version__

__all__ = [
    "Registry",
    "RegistryConfig",
    "TrainingRun",
    "__version__",
    "connect",
    "install_verified",
    "load_verified",
    "open_registry",
    "sign",
    "training_run",
    "verify",
    "verify_or_raise",
]

if TYPE_CHECKING:
    from mlprov._api import connect, install_verified, load_verified, sign, verify, verify_or_raise
    from mlprov.config import RegistryConfig
    from mlprov.registry import Registry, open_registry
    from mlprov.training import TrainingRun, training_run

_LAZY = {
    "Registry": "mlprov.registry",
    "open_registry": "mlprov.registry",
    "RegistryConfig": "mlprov.config",
    "TrainingRun": "mlprov.training",
    "training_run": "mlprov.training",
    "connect": "mlprov._api",
    "install_verified": "mlprov._api",
    "load_verified": "mlprov._api",
    "sign": "mlprov._api",
    "verify": "mlprov._api",
    "verify_or_raise": "mlprov._api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlprov' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - lazy on purpose

    return getattr(importlib.import_module(module), name)
