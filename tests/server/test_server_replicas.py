"""Two ``mlprov serve`` processes on one PostgreSQL behave as one registry: concurrent
registrations through both never share a version number, one idempotency key makes one
version whichever replica each retry reaches, and of concurrent alias moves expecting the
same generation exactly one wins (the others get 409 or 412 and change nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from support.registry_env import RegistryEnv
from support.server_process import ServerProcess, running_server, token, upload


@pytest.fixture
def pg_reg(tmp_path: Path, pg_schema_uri: str) -> RegistryEnv:
    home = tmp_path / "home"
    home.mkdir()
    env = RegistryEnv(home=home, metadata_uri=pg_schema_uri)
    env.registry().close()
    return env


@pytest.fixture
def replicas(pg_reg: RegistryEnv, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with (
        running_server(pg_reg, tmp_path / "one.log") as one,
        running_server(pg_reg, tmp_path / "two.log") as two,
    ):
        yield one, two


def _clients(
    reg: RegistryEnv, replicas: tuple[ServerProcess, ServerProcess], role: str
) -> list[httpx.Client]:
    secret = token(reg, role)
    return [server.client(secret) for server in replicas]


def _files(client: httpx.Client, data: bytes) -> dict[str, object]:
    return {"files": [{"path": "w.bin", "sha256": upload(client, data), "size": len(data)}]}


def test_concurrent_registrations_through_two_replicas_get_distinct_numbers(
    pg_reg: RegistryEnv, replicas: tuple[ServerProcess, ServerProcess]
) -> None:
    clients = _clients(pg_reg, replicas, "publisher")
    bodies = [_files(clients[i % 2], f"weights {i}".encode()) for i in range(16)]

    def register(i: int) -> httpx.Response:
        return clients[i % 2].post("/api/v1/models/m/versions", json=bodies[i])

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(register, range(16)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    numbers = sorted(r.json()["version"] for r in responses)
    assert numbers == list(range(1, 17))
    listed = clients[0].get("/api/v1/models/m/versions").json()
    assert sorted(v["version"] for v in listed) == numbers


def test_one_idempotency_key_makes_one_version_across_replicas(
    pg_reg: RegistryEnv, replicas: tuple[ServerProcess, ServerProcess]
) -> None:
    clients = _clients(pg_reg, replicas, "publisher")
    body = _files(clients[0], b"the one model")

    def register(i: int) -> httpx.Response:
        return clients[i % 2].post(
            "/api/v1/models/m/versions", json=body, headers={"Idempotency-Key": "train-run-7"}
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(register, range(8)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert {r.json()["version"] for r in responses} == {1}
    assert len(clients[1].get("/api/v1/models/m/versions").json()) == 1


def test_concurrent_alias_moves_through_two_replicas_have_one_winner(
    pg_reg: RegistryEnv, replicas: tuple[ServerProcess, ServerProcess]
) -> None:
    publishers = _clients(pg_reg, replicas, "publisher")
    promoters = _clients(pg_reg, replicas, "promoter")
    for i in range(9):
        created = publishers[i % 2].post(
            "/api/v1/models/m/versions", json=_files(publishers[i % 2], f"v{i}".encode())
        )
        assert created.status_code == 201, created.text
    first = promoters[0].put("/api/v1/models/m/aliases/production", json={"version": 1})
    assert first.status_code == 200, first.text
    for round_ in range(3):
        state = promoters[0].get("/api/v1/models/m/aliases/production")
        generation = state.json()["generation"]
        # Every racer moves to another version than the current one: no no-op moves.
        targets = [v for v in range(1, 10) if v != state.json()["version"]]
        assert state.headers["ETag"] == f'"{generation}"'
        history_before = promoters[0].get("/api/v1/models/m/aliases/production/history").json()

        def move(
            i: int, generation: int = generation, targets: list[int] = targets, round_: int = round_
        ) -> httpx.Response:
            return promoters[i % 2].put(
                "/api/v1/models/m/aliases/production",
                json={"version": targets[i], "reason": f"round {round_}"},
                headers={"If-Match": f'"{generation}"'},
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(move, range(8)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(200) == 1, [r.text for r in responses]
        assert set(statuses) - {200} <= {409, 412}, [r.text for r in responses]
        winner = next(r for r in responses if r.status_code == 200).json()
        after = promoters[1].get("/api/v1/models/m/aliases/production").json()
        assert after["generation"] == generation + 1
        assert after["version"] == winner["event"]["to_version"]
        history = promoters[1].get("/api/v1/models/m/aliases/production/history").json()
        assert len(history) == len(history_before) + 1


def test_serve_with_two_workers_answers_as_one_registry(
    pg_reg: RegistryEnv, tmp_path: Path
) -> None:
    with running_server(pg_reg, tmp_path / "workers.log", workers=2) as server:
        client = server.client(token(pg_reg, "publisher"))
        bodies = [_files(client, f"w{i}".encode()) for i in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(
                pool.map(lambda b: client.post("/api/v1/models/m/versions", json=b), bodies)
            )
        assert sorted(r.json()["version"] for r in responses) == list(range(1, 9))
    assert server.process.returncode is not None
