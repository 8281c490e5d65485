"""Bad input gets its exit code and one line, and changes nothing: no row, no blob, no alias,
no audit entry. On SQLite and PostgreSQL.

Each table's cases run as CLI processes in parallel (they are independent and all must
leave the registry as it was), then each case is checked by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlprov.config import RegistryConfig
from mlprov.registry import open_registry
from support.bad_input import Case, assert_refused
from support.mounts import mounted
from support.registry_env import RegistryEnv, make_model, one_line_error


@pytest.fixture
def seeded(reg: RegistryEnv, tmp_path: Path) -> RegistryEnv:
    """A registry holding demo/1 with demo@prod -> 1."""
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "seed"), "demo")
        registry.set_alias("demo", "prod", 1)
    finally:
        registry.close()
    return reg


BAD_NAMES = {
    "upper case": "Demo",
    "space": "de mo",
    "cyrillic a": "dem\u043e",  # U+043E CYRILLIC SMALL LETTER O looks like 'o'
    "cyrillic a (2)": "\u0430bc",  # U+0430 looks like 'a'
    "dot dot": "..",
    "dot dot inside": "a..b",
    "slash": "a/b",
    "traversal": "../etc",
    "empty": "",
}


def test_bad_model_names_are_refused(seeded: RegistryEnv, tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w.bin": b"new bytes, never stored"})
    cases: dict[str, Case] = {
        f"register {label}": (["register", str(model), "--name", name], 2, "invalid model name")
        for label, name in BAD_NAMES.items()
    }
    cases.update(
        {
            "models create upper": (["models", "create", "Demo"], 2, "invalid model name"),
            "models show cyrillic": (["models", "show", "dem\u043e"], 2, "invalid model name"),
            "alias set upper model": (["alias", "set", "Demo", "prod", "1"], 2, "invalid"),
            "resolve cyrillic": (["resolve", "dem\u043e/1"], 2, "invalid reference"),
            "alias upper case": (["alias", "set", "demo", "Prod", "1"], 2, "invalid alias"),
            "alias only digits": (["alias", "set", "demo", "42", "1"], 2, "invalid alias"),
            "alias latest": (["alias", "set", "demo", "latest", "1"], 2, "latest"),
            "reference without version": (["resolve", "demo"], 2, "invalid reference"),
            "version zero": (["versions", "show", "demo/0"], 2, "version"),
        }
    )
    assert_refused(seeded, cases)


def test_unknown_model_version_alias_and_path_are_not_found(
    seeded: RegistryEnv, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    model = make_model(tmp_path / "m", {"w.bin": b"never stored"})
    cases: dict[str, Case] = {
        "resolve unknown model": (["resolve", "nosuch/1"], 4, "nosuch"),
        "show unknown model": (["models", "show", "nosuch"], 4, "nosuch"),
        "versions of unknown model": (["versions", "list", "nosuch"], 4, "nosuch"),
        "alias on unknown model": (["alias", "set", "nosuch", "prod", "1"], 4, "nosuch"),
        "tag unknown model": (["models", "tag", "nosuch", "k=v"], 4, "nosuch"),
        "download unknown model": (["download", "nosuch/1", "--to", str(target)], 4, "nosuch"),
        "resolve unknown version": (["resolve", "demo/99"], 4, "demo/99"),
        "show unknown version": (["versions", "show", "demo/99"], 4, "demo/99"),
        "tag unknown version": (["versions", "tag", "demo/99", "k=v"], 4, "demo/99"),
        "alias to unknown version": (["alias", "set", "demo", "prod", "99"], 4, "demo/99"),
        "stage of unknown version": (["stage", "set", "demo", "99", "Production"], 4, "demo/99"),
        "download unknown version": (["download", "demo/99", "--to", str(target)], 4, "demo/99"),
        "resolve unknown alias": (["resolve", "demo@nosuch"], 4, "demo@nosuch"),
        "show unknown alias": (["alias", "show", "demo", "nosuch"], 4, "demo@nosuch"),
        "delete unknown alias": (["alias", "delete", "demo", "nosuch"], 4, "demo@nosuch"),
        "download unknown alias": (["download", "demo@nosuch", "--to", str(target)], 4, "nosuch"),
        "parent unknown version": (
            ["register", str(model), "--name", "demo", "--parent", "demo/99"],
            4,
            "demo/99",
        ),
        "missing path": (["register", str(tmp_path / "absent"), "--name", "demo"], 4, "absent"),
    }
    assert_refused(seeded, cases)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_malformed_options_are_refused(seeded: RegistryEnv, tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w.bin": b"never stored"})
    register = ["register", str(model), "--name", "demo"]
    cases: dict[str, Case] = {
        "param without value": ([*register, "--param", "lr"], 2, "KEY=VALUE"),
        "param twice": ([*register, "--param", "a=1", "--param", "a=2"], 2, "twice"),
        "dataset without digest": ([*register, "--dataset", "d=s3://x"], 2, "dataset"),
        "dataset bad digest": ([*register, "--dataset", "d=s3://x@sha256:zz"], 2, "digest"),
        "unknown lineage relation": ([*register, "--lineage", "cousin=demo/1"], 2, "relation"),
        "unknown hash": ([*register, "--hash", "md5"], 2, "md5"),
        "unknown stage": (["stage", "set", "demo", "1", "Prod"], 2, "stage"),
        "nothing to tag": (["versions", "tag", "demo/1"], 2, "nothing to do"),
        "missing params file": ([*register, "--params", str(tmp_path / "p.json")], 4, "p.json"),
    }
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json", encoding="utf-8")
    cases["params file not JSON"] = ([*register, "--params", str(bad_json)], 2, "JSON")
    nan = tmp_path / "nan.json"
    nan.write_text('{"loss": NaN}', encoding="utf-8")
    cases["NaN metric"] = ([*register, "--metrics", str(nan)], 2, "nan")
    assert_refused(seeded, cases)


def test_unsafe_paths_are_refused_without_blocking(seeded: RegistryEnv, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of any model", encoding="utf-8")

    def folder(name: str) -> Path:
        return make_model(tmp_path / name, {"w.bin": f"{name} bytes".encode()})

    escape = folder("escape")
    (escape / "leak").symlink_to(outside)
    relative_escape = folder("relative-escape")
    (relative_escape / "leak").symlink_to(Path("..") / "secret.txt")
    fifo_inside = folder("fifo-inside")
    os.mkfifo(fifo_inside / "pipe")
    os.mkfifo(tmp_path / "fifo-itself")
    dangling = folder("dangling")
    (dangling / "gone").symlink_to(dangling / "nothing-here")
    link_root = tmp_path / "link-root"
    link_root.symlink_to(folder("real-root"))
    empty = tmp_path / "empty"
    empty.mkdir()
    socket_dir = folder("with-socket")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(socket_dir / "sock"))  # fits: AF_UNIX paths may be ~107 bytes

    def register(path: Path, *extra: str) -> list[str]:
        return ["register", str(path), "--name", "demo", *extra]

    cases: dict[str, Case] = {
        "symlink outside": (register(escape), 2, "symlink"),
        "symlink outside, symlinks allowed": (
            register(escape, "--allow-symlinks"),
            2,
            "outside the model folder",
        ),
        "relative symlink outside, allowed": (
            register(relative_escape, "--allow-symlinks"),
            2,
            "outside the model folder",
        ),
        "dangling symlink, allowed": (register(dangling, "--allow-symlinks"), 2, "dangling"),
        "model root is a symlink": (register(link_root), 2, "symlink"),
        "fifo inside": (register(fifo_inside), 2, "FIFO"),
        "fifo itself": (register(tmp_path / "fifo-itself"), 2, "FIFO"),
        "device": (register(Path("/dev/null")), 2, "device"),
        "socket inside": (register(socket_dir), 2, "socket"),
        "empty folder": (register(empty), 2, "no files"),
    }
    try:
        assert_refused(seeded, cases)
    finally:
        listener.close()


# -- permissions, full disk, read-only store: need root tricks, with fallbacks -----------


def _drop_dac_override() -> None:
    """preexec_fn: remove CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so
    the exec'd process runs as root but obeys file permissions like any user. (Running as
    ``nobody`` is not portable: the interpreter may live under /root.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _permissions_preexec() -> Callable[[], None] | None:
    if os.geteuid() != 0:
        return None
    probe = subprocess.run(
        [sys.executable, "-c", "pass"], preexec_fn=_drop_dac_override, check=False
    )
    if probe.returncode != 0:
        # In CI (root, on this machine) the permission tests must run, never skip.
        if os.environ.get("CI"):
            pytest.fail("running as root in CI and cannot drop CAP_DAC_OVERRIDE")
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE")
    return _drop_dac_override


def test_an_unreadable_file_is_refused(seeded: RegistryEnv, tmp_path: Path) -> None:
    preexec = _permissions_preexec()
    model = make_model(tmp_path / "m", {"a.bin": b"readable", "b.bin": b"unreadable"})
    (model / "b.bin").chmod(0)
    locked_dir = make_model(tmp_path / "d", {"a.bin": b"readable", "sub/c.bin": b"hidden"})
    (locked_dir / "sub").chmod(0)
    before = seeded.snapshot()
    try:
        for path, word in ((model, "b.bin"), (locked_dir, "permission denied")):
            result = seeded.cli("register", str(path), "--name", "demo", preexec_fn=preexec)
            assert result.returncode == 2, result.stderr
            assert word in one_line_error(result.stderr)
    finally:
        (locked_dir / "sub").chmod(0o755)
    assert seeded.snapshot() == before


@dataclass
class StoreEnv(RegistryEnv):
    """A RegistryEnv whose artefact store is elsewhere (``MLPROV_ARTIFACTS``)."""

    artifact_uri: str = ""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["MLPROV_ARTIFACTS"] = self.artifact_uri
        return env

    def registry(self) -> Any:
        config = RegistryConfig(
            home=self.home, metadata_uri=self.metadata_uri, artifact_uri=self.artifact_uri
        )
        return open_registry(config, actor="tester@ci")


def _limit_file_size() -> None:
    """preexec_fn fallback for a full disk: no file may grow past 2 MiB (EFBIG, not SIGXFSZ)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))


def test_a_full_disk_is_a_storage_error_and_leaves_no_row_or_partial_blob(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    # a.bin (1 MiB) fits and is stored first; b.bin (3 MiB) does not. a.bin's blob stays,
    # unreferenced, for `gc`: deleting it could break a concurrent registration reusing it.
    a_bin = os.urandom(1 << 20)
    model = make_model(tmp_path / "big", {"a.bin": a_bin, "b.bin": os.urandom(3 << 20)})
    with mounted(["-t", "tmpfs", "-o", "size=2m", "tmpfs"], disk) as on_tmpfs:
        env = StoreEnv(
            home=reg.home,
            metadata_uri=reg.metadata_uri,
            artifact_uri=(disk / "blobs").as_uri() if on_tmpfs else (reg.home / "blobs").as_uri(),
        )
        seed = env.registry()
        try:
            seed.register(make_model(tmp_path / "small"), "demo")
        finally:
            seed.close()
        before = env.snapshot()
        assert len(before["blobs"]) == 3
        result = env.cli(
            "register",
            str(model),
            "--name",
            "demo",
            "-q",
            preexec_fn=None if on_tmpfs else _limit_file_size,
        )
        assert result.returncode == 5, result.stderr
        line = one_line_error(result.stderr)
        assert "no space left" in line or "too large" in line, line
        after = env.snapshot()
        assert {k: v for k, v in after.items() if k != "blobs"} == {
            k: v for k, v in before.items() if k != "blobs"
        }
        assert set(after["blobs"]) - set(before["blobs"]) <= {hashlib.sha256(a_bin).hexdigest()}
        leftovers = list((Path(env.artifact_uri[len("file://") :]) / "tmp").iterdir())
        assert leftovers == []


@contextlib.contextmanager
def _read_only_view(source: Path, target: Path) -> Iterator[bool]:
    """Yield True with ``source`` bind-mounted read-only at ``target``, False if refused."""
    with mounted(["--bind", str(source)], target) as bound:
        remount = ["mount", "-o", "remount,ro,bind", str(target)]
        yield bound and subprocess.run(remount, capture_output=True, check=False).returncode == 0


def test_a_read_only_store_is_a_storage_error(seeded: RegistryEnv, tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w.bin": b"new bytes, never stored"})
    before = seeded.snapshot()
    view = tmp_path / "read-only"
    view.mkdir()
    with contextlib.ExitStack() as stack:
        preexec = None
        if not stack.enter_context(_read_only_view(seeded.home, view)):
            # No mount: take write permission away from the registry folder instead.
            view = seeded.home
            preexec = _permissions_preexec()
            for path in [view, *view.rglob("*")]:
                if path.is_dir():
                    path.chmod(0o555)
                    stack.callback(path.chmod, 0o755)
        sqlite = seeded.metadata_uri.startswith("sqlite")
        env = RegistryEnv(
            home=view,
            metadata_uri=f"sqlite:///{view / 'registry.db'}" if sqlite else seeded.metadata_uri,
        )
        result = env.cli("register", str(model), "--name", "demo", "-q", preexec_fn=preexec)
        assert result.returncode == 5, result.stderr
        line = one_line_error(result.stderr)
        assert any(w in line for w in ("read-only", "not writable", "cannot open")), line
    assert seeded.snapshot() == before


# -- hostile documents: every JSON or YAML file or value read from a user ----------------

DEEP = 100_000
HUGE_INT = "1" + "0" * 100_000  # 10**100000
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)

#: file name -> (content, a word of the one-line error). Each is refused with exit 2.
HOSTILE_DOCUMENTS: dict[str, tuple[bytes, str]] = {
    "deep.json": (b"[" * DEEP + b"]" * DEEP, "nests deeper"),
    "deep-object.json": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "nests deeper"),
    "deep.yaml": (b"a: " + b"[" * DEEP + b"]" * DEEP, "nests deeper"),
    "huge-int.json": (b'{"seed": ' + HUGE_INT.encode() + b"}", "number of 100001 characters"),
    "huge-int.yaml": (b"seed: " + HUGE_INT.encode(), "number of 100001 characters"),
    "inf.json": (b'{"lr": 1e999}', "not finite"),
    "inf.yaml": (b"lr: 1.0e+999", "not a finite number"),
    "nan.json": (b'{"lr": NaN}', "NaN"),
    "duplicate.json": (b'{"a": 1, "a": 2}', "repeats the key 'a'"),
    "nested-duplicate.json": (b'{"a": {"b": [{"c": 1, "c": 2}]}}', "repeats the key 'c'"),
    "nested-duplicate.yaml": (b"a:\n  b: 1\n  b: 2\n", "repeats the key 'b'"),
    "laughs.yaml": (BILLION_LAUGHS.encode(), "aliases"),
    "tag.yaml": (b"a: !!python/object/apply:os.system [true]\n", "tag"),
    "not-utf8.json": (b'{"a": "caf\xe9"}', "UTF-8"),
    "not-utf8.yaml": (b"a: caf\xe9\n", "UTF-8"),
}


def _write_hostile_documents(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    paths = {}
    for name, (content, _) in HOSTILE_DOCUMENTS.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    big = folder / "big.json"
    with big.open("wb") as stream:  # 100 MB, sparse: refused by its size before reading
        stream.truncate(100 * 1024 * 1024)
    paths["big.json"] = big
    return paths


def test_hostile_document_files_are_refused(seeded: RegistryEnv, tmp_path: Path) -> None:
    documents = _write_hostile_documents(tmp_path / "docs")
    words = {name: word for name, (_, word) in HOSTILE_DOCUMENTS.items()}
    words["big.json"] = "more than the limit"
    model = make_model(tmp_path / "m", {"w.bin": b"never stored"})
    register = ["register", str(model), "--name", "demo", "--no-git", "-q"]
    cases: dict[str, Case] = {}
    for name, path in documents.items():
        cases[f"--params {name}"] = ([*register, "--params", str(path)], 2, words[name])
    for name in ("deep.yaml", "huge-int.json", "inf.json", "laughs.yaml", "big.json"):
        cases[f"--metrics {name}"] = (
            [*register, "--metrics", str(documents[name])],
            2,
            words[name],
        )
        cases[f"--card {name}"] = ([*register, "--card", str(documents[name])], 2, words[name])
    assert_refused(seeded, cases)


def test_hostile_documents_are_refused_by_sign_and_attest(
    seeded: RegistryEnv, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = tmp_path / "k.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    documents = _write_hostile_documents(tmp_path / "docs")
    model = make_model(tmp_path / "m", {"w.bin": b"never stored"})
    sign = ["sign", str(model), "--key", str(key), "--name", "demo", "--no-git", "-q"]
    attest = ["attest", "demo/1", "--predicate-type", "https://example.com/eval", "--key", str(key)]
    cases: dict[str, Case] = {}
    for name in ("deep.json", "huge-int.json", "inf.json", "duplicate.json", "big.json"):
        word = "more than the limit" if name == "big.json" else HOSTILE_DOCUMENTS[name][1]
        cases[f"sign --params {name}"] = ([*sign, "--params", str(documents[name])], 2, word)
        cases[f"attest --predicate {name}"] = (
            [*attest, "--predicate", str(documents[name])],
            2,
            word,
        )
    assert_refused(seeded, cases)
    assert not (model / "model.sig").exists()


def test_hostile_param_values_are_refused(seeded: RegistryEnv, tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w.bin": b"never stored"})
    register = ["register", str(model), "--name", "demo", "--no-git", "-q", "--param"]
    cases: dict[str, Case] = {
        "deep list": ([*register, "x=" + "[" * DEEP + "]" * DEEP], 2, "nests deeper"),
        "huge int": ([*register, "seed=" + HUGE_INT], 2, "number of 100001 characters"),
        "huge int in a list": ([*register, f"x=[{HUGE_INT}]"], 2, "number of 100001"),
        "1e999": ([*register, "lr=1e999"], 2, "not finite"),
        "NaN in a list": ([*register, "x=[NaN]"], 2, "NaN"),
        "duplicate key": ([*register, 'x={"a": 1, "a": 2}'], 2, "repeats the key 'a'"),
        "broken JSON": ([*register, "x=[1, 2"], 2, "write it as a JSON string"),
    }
    assert_refused(seeded, cases)


def test_param_values_that_are_json_or_text(seeded: RegistryEnv, tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", {"w.bin": b"new bytes"})
    values = {
        "layers": ("[64, 64]", [64, 64]),
        "lr": ("0.1", 0.1),
        "seed": ("42", 42),
        "note": ('"[draft]"', "[draft]"),
        "kind": ("inf", "inf"),
        "flag": ("true", True),
    }
    args = [f"--param={key}={text}" for key, (text, _) in values.items()]
    seeded.cli("register", str(model), "--name", "demo", "--no-git", "-q", *args, check=True)
    registry = seeded.registry()
    try:
        params = registry.get_version("demo/2").params
    finally:
        registry.close()
    assert params == {key: value for key, (_, value) in values.items()}


# -- names a model cannot carry: not UTF-8, colliding on macOS/Windows, symlink loops ------


def _private_key(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _bytes_path(folder: Path, name: bytes) -> Path:
    """``folder / name`` for a name that is not UTF-8 (Python keeps its bytes as surrogates)."""
    return folder / os.fsdecode(name)


def test_names_that_cannot_be_signed_are_refused(seeded: RegistryEnv, tmp_path: Path) -> None:
    not_utf8 = make_model(tmp_path / "not-utf8", {"ok.bin": b"fine"})
    _bytes_path(not_utf8, b"caf\xe9.bin").write_bytes(b"latin-1 name")
    not_utf8_dir = make_model(tmp_path / "not-utf8-dir", {"ok.bin": b"fine"})
    _bytes_path(not_utf8_dir, b"d\xe9").mkdir()
    _bytes_path(not_utf8_dir, b"d\xe9/w.bin").write_bytes(b"inside")
    not_utf8_file = _bytes_path(tmp_path, b"w\xff.bin")
    not_utf8_file.write_bytes(b"single file")
    nfc_nfd = make_model(tmp_path / "nfc-nfd", {"caf\u00e9.bin": b"NFC", "cafe\u0301.bin": b"NFD"})
    case = make_model(tmp_path / "case", {"Model.bin": b"upper", "model.bin": b"lower"})
    folder_case = make_model(tmp_path / "folder-case", {"Data/a.bin": b"a", "data/b.bin": b"b"})
    loop = make_model(tmp_path / "loop", {"w.bin": b"weights"})
    (loop / "a").symlink_to("b")
    (loop / "b").symlink_to("a")
    loop_root = tmp_path / "loop-root"
    loop_root.symlink_to(loop_root.name)
    expected = {
        "not UTF-8": (not_utf8, "caf\\xe9.bin: the name is not valid UTF-8"),
        "not UTF-8 folder": (not_utf8_dir, "d\\xe9/w.bin: the name is not valid UTF-8"),
        "not UTF-8 single file": (not_utf8_file, "w\\xff.bin: the name is not valid UTF-8"),
        "NFC and NFD": (nfc_nfd, "only in Unicode normalisation (NFC/NFD)"),
        "case": (case, "'Model.bin' and 'model.bin' differ only in upper/lower case"),
        "folder case": (folder_case, "'Data' and 'data' differ only in upper/lower case"),
        "symlink loop": (loop, "symlink loop"),
        "symlink loop at the root": (loop_root, "symlink loop"),
    }
    key = _private_key(tmp_path / "k.pem")
    cases: dict[str, Case] = {}
    for label, (path, word) in expected.items():
        common = [str(path), "--name", "demo", "--no-git", "-q", "--allow-symlinks"]
        cases[f"register {label}"] = (["register", *common], 2, word)
        cases[f"sign --name {label}"] = (["sign", *common, "--key", str(key)], 2, word)
    assert_refused(seeded, cases)
    for path, _ in expected.values():
        assert not (path / "model.sig").exists()
    assert not (tmp_path / "w\udcff.bin.sig").exists()


# -- datasets: a file's digest is its sha256sum; a folder's is its manifest digest ---------


def test_a_one_file_dataset_is_bound_by_its_sha256sum(seeded: RegistryEnv, tmp_path: Path) -> None:
    import hashlib

    data = tmp_path / "train.csv"
    data.write_bytes(b"a,b\n1,2\n")
    sha256sum = hashlib.sha256(data.read_bytes()).hexdigest()
    shards = make_model(tmp_path / "shards", {"0.parquet": b"zero", "1.parquet": b"one"})
    key = _private_key(tmp_path / "k.pem")
    model = make_model(tmp_path / "m", {"w.bin": b"new weights"})
    seeded.cli(
        *("sign", str(model), "--key", str(key), "--name", "demo", "--no-git", "-q"),
        *("--dataset", f"train={data}@sha256:{sha256sum}", "--dataset", f"shards={shards}"),
        check=True,
    )
    statement = json.loads(seeded.cli("provenance", "demo/2", check=True).stdout)
    datasets = {
        d["name"]: d
        for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        if d["annotations"]["kind"] == "dataset"
    }
    assert datasets["train"]["digest"] == {"sha256": sha256sum}
    assert datasets["train"]["annotations"]["digestOf"] == "file"
    assert datasets["shards"]["annotations"]["digestOf"] == "manifest"
    assert datasets["shards"]["uri"].endswith("/")
    bom = json.loads(seeded.cli("bom", "demo/2", check=True).stdout)
    kinds = {
        c["name"]: {p["name"]: p["value"] for p in c.get("properties", [])}["mlprov:digest-of"]
        for c in bom["components"]
        if c["type"] == "data"
    }
    assert kinds == {"train": "file", "shards": "manifest"}


def test_a_wrong_dataset_digest_is_refused(seeded: RegistryEnv, tmp_path: Path) -> None:
    import hashlib

    data = tmp_path / "train.csv"
    data.write_bytes(b"a,b\n1,2\n")
    # What mlprov recorded for one file before: the manifest root, not the file's digest.
    manifest_root = hashlib.sha256(hashlib.sha256(data.read_bytes()).digest()).hexdigest()
    model = make_model(tmp_path / "m", {"w.bin": b"never stored"})
    register = ["register", str(model), "--name", "demo", "--no-git", "-q", "--dataset"]
    cases: dict[str, Case] = {
        "zeros": ([*register, f"train={data}@sha256:{'0' * 64}"], 1, "sha256sum"),
        "manifest root of a file": ([*register, f"train={data}@sha256:{manifest_root}"], 1, "file"),
    }
    assert_refused(seeded, cases)
