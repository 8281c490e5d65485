"""Real mounts for tests that need a file system boundary (a mount point, a full or a
read-only disk): mounted only when the test runs as root and ``mount`` agrees."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def mounted(args: list[str], target: Path) -> Iterator[bool]:
    """Yield True with ``mount ARGS TARGET`` in place (unmounted after), False if refused."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, check=False)
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", str(target)], check=True)
