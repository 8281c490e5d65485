"""Public names a package hands out from its submodules on first use (PEP 562).

``mlprov.registry`` and ``mlprov.provenance`` list their public surface in ``__all__``
but import the modules behind it only when a name is first asked for, so a process that
needs one small part (a client that never opens a store, an export that writes one
statement) does not pay for the rest (docs/adr/0049, amendments 13 and 17). Each
package keeps a table of where its names live and gets its ``__getattr__`` and
``__dir__`` from :func:`lazy_exports`; it also imports the names under
``TYPE_CHECKING``, so type checkers see them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose globals are ``namespace``: a name
    in ``homes`` is imported from its module on first use and kept in ``namespace``
    (later uses are plain attribute reads); any other name is an AttributeError, so
    submodules (``from mlprov.registry import evidence``) are found by the import
    system itself."""

    def module_getattr(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    def module_dir() -> list[str]:
        return sorted({*namespace, *homes})

    return module_getattr, module_dir
