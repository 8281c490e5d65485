"""A real S3 API server process on loopback (moto's server), a registry whose artefacts
live in one of its buckets, and artefact stores that pause at one step of a store or a
removal so a test can interleave a registration with ``mlprov gc`` deterministically."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlprov.artifacts import (
    ArtifactStore,
    BlobHold,
    BlobInfo,
    ChunkConsumer,
    ProgressCallback,
    StoredBlob,
)
from support.registry_env import RegistryEnv

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on a free loopback port, for one test session."""

    def __init__(self, log: Path, *, checks_credentials: bool = False) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        env = dict(os.environ)
        if checks_credentials:
            # moto authenticates every request once this many requests went unchecked.
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start; see {log}") from None
                time.sleep(0.1)

    def env(self) -> dict[str, str]:
        """Fake credentials, a region and the endpoint, and nothing read from the
        machine's own AWS files or instance metadata."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key of a bucket below a prefix, sorted."""
        paginator = self.client().get_paginator("list_objects_v2")
        return sorted(
            str(item["Key"])
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        )

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


@dataclass
class S3RegistryEnv(RegistryEnv):
    """A registry whose metadata is ``metadata_uri`` and whose artefacts are in S3."""

    artifact_uri: str = ""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["MLPROV_ARTIFACTS"] = self.artifact_uri
        # The S3 settings the test set (the base environment drops every MLPROV_ variable).
        env.update({k: v for k, v in os.environ.items() if k.startswith("MLPROV_S3_")})
        return env

    def registry(self) -> Any:
        from mlprov.config import RegistryConfig
        from mlprov.registry import open_registry

        return open_registry(
            RegistryConfig(
                home=self.home, metadata_uri=self.metadata_uri, artifact_uri=self.artifact_uri
            ),
            actor="tester@ci",
        )


class PausingStore(ArtifactStore):
    """A real artefact store (any one, reached through its public methods) that calls
    ``before_hold(digest)`` and ``after_hold(digest)`` around a registration's hold (its
    gc lease), ``after_read(digest)`` once a blob was read to its end, ``after_put(digest)``
    once bytes were stored (or found stored) by ``put_bytes``, and ``before_delete(digest)``
    right before a removal: the points where a registration and gc meet."""

    def __init__(self, inner: ArtifactStore) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.before_hold: Callable[[str], None] | None = None
        self.after_hold: Callable[[str], None] | None = None
        self.before_delete: Callable[[str], None] | None = None
        self.after_read: Callable[[str], None] | None = None
        self.after_put: Callable[[str], None] | None = None

    def _put_file(
        self,
        path: Path,
        name: str,
        progress: ProgressCallback | None,
        observe: ChunkConsumer | None,
        hold: BlobHold | None,
    ) -> StoredBlob:
        def held(digest: str) -> None:
            if self.before_hold is not None:
                self.before_hold(digest)
            if hold is not None:
                hold(digest)
            if self.after_hold is not None:
                self.after_hold(digest)

        return self.inner.put_file(path, name=name, progress=progress, observe=observe, hold=held)

    def _put_bytes(self, data: bytes) -> StoredBlob:
        stored = self.inner.put_bytes(data)
        if self.after_put is not None:
            self.after_put(stored.sha256)
        return stored

    def _exists(self, sha256: str) -> bool:
        return self.inner.exists(sha256)

    def _read_chunks(self, sha256: str) -> Iterator[bytes]:
        yield from self.inner.read_chunks(sha256)
        if self.after_read is not None:
            self.after_read(sha256)

    def _delete(self, sha256: str) -> None:
        if self.before_delete is not None:
            self.before_delete(sha256)
        self.inner.delete(sha256)

    def _list(self) -> Iterator[BlobInfo]:
        return iter(self.inner.blobs())

    def _remove_staging(self, older_than: datetime) -> int:
        return self.inner.remove_staging(older_than)


def blob_path(home: Path, sha256: str) -> Path:
    """Where the default file store of a registry at ``home`` keeps a blob."""
    return home / "blobs" / "sha256" / sha256[:2] / sha256


def age(path: Path, seconds: float) -> None:
    """Make a stored blob look written ``seconds`` ago (the grace period reads mtime)."""
    then = time.time() - seconds
    os.utime(path, (then, then))
