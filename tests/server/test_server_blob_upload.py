"""A blob upload through a real server is written once into the artefact store: a body
of several receive batches is stored whole and reads back the same; one whose bytes do
not hash to the URL's digest is refused and leaves nothing, not even a temporary file;
a version registered from uploaded blobs records each file's format, detected from the
stored bytes (a pickle inside a zip archive is found at the archive's end)."""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.registry_env import RegistryEnv
from support.server_process import running_server, token, upload

#: More than three of the server's 1 MiB receive batches, and not a multiple of one.
BIG = bytes(range(251)) * (13 * 1024 + 7)


@pytest.fixture
def admin(reg: RegistryEnv, tmp_path: Path) -> Iterator[httpx.Client]:
    with running_server(reg, tmp_path / "server.log") as server:
        yield server.client(token(reg, "admin", name="ops"))


def _staging(reg: RegistryEnv) -> list[Path]:
    """What the file artefact store holds besides its blobs (temporary files)."""
    tmp = reg.home / "blobs" / "tmp"
    return sorted(tmp.iterdir()) if tmp.is_dir() else []


def test_a_large_upload_is_stored_whole_and_reads_back(
    reg: RegistryEnv, admin: httpx.Client
) -> None:
    assert len(BIG) > 3 * 1024 * 1024
    digest = hashlib.sha256(BIG).hexdigest()
    response = admin.put(f"/api/v1/blobs/{digest}", content=BIG)
    assert response.status_code == 201, response.text
    assert response.json() == {"sha256": digest, "size": len(BIG), "created": True}
    stored = reg.home / "blobs" / "sha256" / digest[:2] / digest
    assert stored.read_bytes() == BIG
    assert admin.get(f"/api/v1/blobs/{digest}").content == BIG
    assert _staging(reg) == []
    again = admin.put(f"/api/v1/blobs/{digest}", content=BIG)
    assert again.status_code == 201, again.text
    assert again.json()["created"] is False
    assert _staging(reg) == []


def test_a_large_upload_with_another_digest_keeps_nothing(
    reg: RegistryEnv, admin: httpx.Client
) -> None:
    before = reg.snapshot()
    claimed = hashlib.sha256(b"other bytes").hexdigest()
    response = admin.put(f"/api/v1/blobs/{claimed}", content=BIG)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "DigestMismatchError"
    assert hashlib.sha256(BIG).hexdigest() in error["message"]
    after = reg.snapshot()
    assert after["blobs"] == before["blobs"]
    assert after["rows"]["versions"] == before["rows"]["versions"]
    assert _staging(reg) == []


def test_formats_of_a_version_from_uploads_are_detected_from_the_stored_blobs(
    admin: httpx.Client,
) -> None:
    state = pickle.dumps(collections.OrderedDict(w=1), protocol=2)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as folder:
        folder.writestr("model/data.pkl", state)
        folder.writestr("model/padding.bin", BIG)  # the directory ends past 3 MiB
    files = {"config.json": b'{"layers": 2}\n', "model.pt": archive.getvalue()}
    body = {
        "files": [
            {"path": path, "sha256": upload(admin, data), "size": len(data)}
            for path, data in files.items()
        ]
    }
    created = admin.post("/api/v1/models/fmt/versions", json=body)
    assert created.status_code == 201, created.text
    formats = {f["path"]: f for f in created.json()["formats"]}
    assert formats["model.pt"]["format"] == "pickle"
    assert formats["model.pt"]["imports"] == ["collections.OrderedDict"]
    assert "scanned model/data.pkl" in formats["model.pt"]["note"]
    assert formats["config.json"]["format"] != "pickle"
