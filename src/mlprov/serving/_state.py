"""What a client has seen: the highest resolution generation per registry and alias.

TUF's client keeps the trusted timestamp and snapshot metadata between updates and
refuses a new one with a lower version (TUF specification v1.0, 5.4.3 and 5.5.5) or one
that expired (5.4.4, 5.5.6). :class:`ResolutionState` is that memory for resolution
statements: a small JSON file recording, per (registry id, name, alias), the highest
generation accepted with the version and digest it named and when it was issued.

Two processes (two pods on one volume, an init container and a sidecar) may accept at
once. Each :meth:`ResolutionState.accept` holds an exclusive ``flock`` on a lock file
beside the state file while it reads, checks and writes, and writes through
:func:`mlprov.fs.write_file_atomically` (temporary file, fsync, rename). The lock is on
a separate file because the rename replaces the state file's inode: a lock on the state
file itself would be held on the old inode while a second process opens the new one. A
reader without the lock sees the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mlprov.config import DEFAULT_LIMITS, default_home
from mlprov.documents import load_json
from mlprov.errors import InvalidInputError, MalformedDocumentError, StorageError, VerificationError
from mlprov.fs import write_file_atomically
from mlprov.serving._resolution import Resolution

__all__ = ["DEFAULT_STATE_NAME", "ResolutionState", "SeenResolution"]

#: The state file's name in ``$MLPROV_HOME`` when no path is given.
DEFAULT_STATE_NAME = "resolutions.json"

_FORMAT_VERSION = 1
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: A state file grows by one entry per alias served; this bounds what is read.
_MAX_STATE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SeenResolution:
    """The newest resolution accepted for one alias of one registry."""

    registry_id: str
    name: str
    alias: str
    generation: int
    version: int
    manifest_digest: str
    issued_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "registryId": self.registry_id,
            "name": self.name,
            "alias": self.alias,
            "generation": self.generation,
            "version": self.version,
            "manifestDigest": self.manifest_digest,
            "issuedAt": self.issued_at.astimezone(timezone.utc).strftime(_TIME_FORMAT),
        }


def _entry(value: object, path: Path) -> SeenResolution:
    def bad() -> StorageError:
        return StorageError(
            f"{path}: the resolution state is corrupt (an entry is malformed); it is what "
            "protects against rollback, so it is not reset silently: restore it or remove "
            "it knowingly"
        )

    if not isinstance(value, dict):
        raise bad()
    try:
        registry_id, name, alias = value["registryId"], value["name"], value["alias"]
        generation, version = value["generation"], value["version"]
        digest, issued = value["manifestDigest"], value["issuedAt"]
        if not all(isinstance(v, str) for v in (registry_id, name, alias, digest, issued)):
            raise bad()
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (generation, version)
        ):
            raise bad()
        issued_at = datetime.strptime(issued, _TIME_FORMAT).replace(tzinfo=timezone.utc)
    except (KeyError, ValueError, TypeError) as e:
        raise bad() from e
    return SeenResolution(registry_id, name, alias, generation, version, digest, issued_at)


class ResolutionState:
    """The resolution state file at ``path`` (default ``$MLPROV_HOME/resolutions.json``)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_home() / DEFAULT_STATE_NAME
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(
                self._lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600
            )
        except OSError as e:
            raise StorageError(
                f"{self._lock_path}: cannot open the resolution state's lock: {e.strerror}"
            ) from e
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as e:
                raise StorageError(
                    f"{self._lock_path}: cannot lock the resolution state: {e.strerror}"
                ) from e
            yield
        finally:
            os.close(handle)  # closing releases the lock

    def _read(self) -> dict[tuple[str, str, str], SeenResolution]:
        try:
            with open(self.path, "rb") as stream:
                data = stream.read(_MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise StorageError(
                f"{self.path}: cannot read the resolution state: {e.strerror}"
            ) from e
        if len(data) > _MAX_STATE_BYTES:
            raise StorageError(f"{self.path}: the resolution state is larger than 4 MiB")
        try:
            document = load_json(data, f"resolution state {self.path}", DEFAULT_LIMITS)
        except MalformedDocumentError as e:
            raise StorageError(f"{self.path}: the resolution state is corrupt: {e.message}") from e
        if (
            not isinstance(document, dict)
            or document.get("version") != _FORMAT_VERSION
            or not isinstance(document.get("resolutions"), list)
        ):
            raise StorageError(
                f"{self.path}: not a resolution state file (version {_FORMAT_VERSION})"
            )
        entries = [_entry(item, self.path) for item in document["resolutions"]]
        return {(e.registry_id, e.name, e.alias): e for e in entries}

    def _write(self, entries: dict[tuple[str, str, str], SeenResolution]) -> None:
        document = {
            "version": _FORMAT_VERSION,
            "resolutions": [entries[key].to_json() for key in sorted(entries)],
        }
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        write_file_atomically(self.path, text.encode("utf-8"), mode=0o644, what="resolution state")

    def seen(self, registry_id: str, name: str, alias: str) -> SeenResolution | None:
        """The newest resolution accepted for this alias of this registry, if any."""
        return self._read().get((registry_id, name, alias))

    def accept(self, resolution: Resolution, now: datetime) -> SeenResolution:
        """Record ``resolution`` as seen, or raise VerificationError and change nothing:

        * it expired at ``now`` (freeze: TUF 5.4.4);
        * its generation is lower than the one accepted before (rollback: TUF 5.4.3);
        * its generation is the one accepted before but names another version or digest
          (the registry, or someone with its key, gave two answers for one generation);
        * it was issued before the resolution accepted last (an older answer replayed).
        """
        if now.tzinfo is None:
            raise InvalidInputError("accept a resolution at a timezone-aware time (UTC)")
        with self._locked():
            entries = self._read()
            key = (resolution.registry_id, resolution.name, resolution.alias)
            before = entries.get(key)
            _check(resolution, before, now)
            seen = SeenResolution(
                resolution.registry_id,
                resolution.name,
                resolution.alias,
                resolution.generation,
                resolution.version,
                resolution.manifest_digest,
                resolution.issued_at,
            )
            if seen != before:
                entries[key] = seen
                self._write(entries)
            return seen


def _check(resolution: Resolution, before: SeenResolution | None, now: datetime) -> None:
    ref = resolution.ref
    if now >= resolution.expires_at:
        raise VerificationError(
            f"the resolution of {ref} (generation {resolution.generation}) expired at "
            f"{resolution.expires_at.strftime(_TIME_FORMAT)}: refused as a frozen answer"
        )
    if before is None:
        return
    if resolution.generation < before.generation:
        raise VerificationError(
            f"rollback refused: the resolution of {ref} is generation {resolution.generation} "
            f"(version {resolution.version}), but generation {before.generation} (version "
            f"{before.version}) was already seen"
        )
    if resolution.generation == before.generation and (
        resolution.version != before.version or resolution.manifest_digest != before.manifest_digest
    ):
        raise VerificationError(
            f"the resolution of {ref} names version {resolution.version} "
            f"({resolution.manifest_digest}) for generation {resolution.generation}, which was "
            f"already seen naming version {before.version} ({before.manifest_digest})"
        )
    if resolution.issued_at < before.issued_at:
        raise VerificationError(
            f"the resolution of {ref} was issued at "
            f"{resolution.issued_at.strftime(_TIME_FORMAT)}, before the one already seen "
            f"({before.issued_at.strftime(_TIME_FORMAT)}): an older answer replayed"
        )
