"""Golden files for the provenance documents.

``pytest tests/provenance --regen-golden`` (or ``MLPROV_REGEN_GOLDEN=1``) rewrites the
files under ``golden/`` from the current code instead of comparing; review the diff
before committing it.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite tests/provenance/golden/* instead of comparing with them",
    )


def _regenerate(config: pytest.Config) -> bool:
    # getoption with a default: the option exists only when this conftest was loaded
    # before argument parsing (pytest tests/provenance ...).
    return bool(config.getoption("--regen-golden", default=False)) or (
        os.environ.get("MLPROV_REGEN_GOLDEN") == "1"
    )


def _readable(data: bytes) -> list[str]:
    """Lines to diff: JSON pretty-printed (the golden bytes are one line), text as is."""
    text = data.decode("utf-8", errors="replace")
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=1, sort_keys=True, ensure_ascii=False)
    return text.splitlines()


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, bytes], None]:
    """``golden(name, data)``: compare ``data`` byte for byte with ``golden/name``."""
    regenerate = _regenerate(request.config)

    def check(name: str, data: bytes) -> None:
        path = GOLDEN_DIR / name
        if regenerate:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        if not path.exists():
            pytest.fail(f"golden file {path} is missing: run pytest with --regen-golden")
        expected = path.read_bytes()
        if expected != data:
            diff = "\n".join(
                difflib.unified_diff(
                    _readable(expected), _readable(data), "golden", "actual", lineterm=""
                )
            )
            if not diff:
                diff = "(same content, different bytes: key order, spacing or number format)"
            pytest.fail(f"{name} differs from its golden file:\n{diff}")

    return check
