"""The archive writer's kernel-copy path (``ArchiveWriter.add_file``): the same bytes as
the streaming path, every copied member's bytes checked against its SHA-256 in the
archive itself, and nothing left behind when a check fails."""

from __future__ import annotations

import errno
import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from mlprov.archive import ROOT, ArchiveWriter, MemberDigestError


def _files(tmp_path: Path) -> list[tuple[str, Path, str]]:
    made = []
    for index, size in enumerate((0, 1, 511, 512, 3 * 1024 * 1024 + 7)):
        data = os.urandom(size)
        path = tmp_path / f"blob{index}"
        path.write_bytes(data)
        made.append((f"{ROOT}/blobs/{index}", path, hashlib.sha256(data).hexdigest()))
    return made


def _write(target: Path, files: list[tuple[str, Path, str]], *, copy: bool) -> None:
    writer = ArchiveWriter(target)
    writer.add_bytes(f"{ROOT}/archive.sig", b"signed listing")
    for name, path, sha256 in files:
        size = path.stat().st_size
        if copy:
            writer.add_file(name, path, size, sha256)
        else:
            writer.add_stream(name, size, [path.read_bytes()])
    writer.commit()


def test_a_copied_member_gives_the_same_archive_as_a_streamed_one(tmp_path: Path) -> None:
    files = _files(tmp_path)
    _write(tmp_path / "copied.tar", files, copy=True)
    _write(tmp_path / "streamed.tar", files, copy=False)
    assert (tmp_path / "copied.tar").read_bytes() == (tmp_path / "streamed.tar").read_bytes()
    with tarfile.open(tmp_path / "copied.tar") as tar:
        for name, path, _ in files:
            member = tar.extractfile(name)
            assert member is not None
            assert member.read() == path.read_bytes()


def test_without_a_kernel_copy_the_bytes_are_copied_through_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(tmp_path)
    _write(tmp_path / "streamed.tar", files, copy=False)

    def cross_device(*args: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    # A file system or kernel without copy_file_range between these files (EXDEV, as
    # Linux before 5.3 answers across file systems).
    monkeypatch.setattr(os, "copy_file_range", cross_device, raising=False)
    _write(tmp_path / "copied.tar", files, copy=True)
    assert (tmp_path / "copied.tar").read_bytes() == (tmp_path / "streamed.tar").read_bytes()


def test_bytes_that_do_not_hash_to_the_key_fail_the_commit_and_leave_nothing(
    tmp_path: Path,
) -> None:
    files = _files(tmp_path)
    name, path, sha256 = files[-1]
    path.write_bytes(b"X" + path.read_bytes()[1:])  # same size, other bytes
    target = tmp_path / "out.tar"
    writer = ArchiveWriter(target)
    for each in files:
        writer.add_file(each[0], each[1], each[1].stat().st_size, each[2])
    with pytest.raises(MemberDigestError) as raised:
        writer.commit()
    assert raised.value.member == name
    assert raised.value.expected == sha256
    assert raised.value.actual == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir() if "out.tar" in p.name) == []


def test_a_source_of_another_size_is_refused_before_it_is_copied(tmp_path: Path) -> None:
    files = _files(tmp_path)
    name, path, sha256 = files[-1]
    size = path.stat().st_size
    with path.open("ab") as grown:
        grown.write(b"appended")
    target = tmp_path / "out.tar"
    writer = ArchiveWriter(target)
    with pytest.raises(MemberDigestError, match=f"{size + 8} bytes, not the {size} expected"):
        writer.add_file(name, path, size, sha256)
    writer.discard()
    assert sorted(p.name for p in tmp_path.iterdir() if "out.tar" in p.name) == []
