"""Artefact formats by content: each format, pickles scanned without loading, bounds."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from mlprov.config import Limits
from mlprov.provenance import FORMAT_LABELS, detect_format, scan_pickle
from support.format_samples import (
    TORCH_DATA_PKL,
    npy_file,
    onnx_file,
    open_file_pickle,
    os_system_pickle,
    plain_pickle,
    safetensors_file,
    torch_zip,
    zip_of,
)

_OS_SYSTEM = "nt.system" if sys.platform == "win32" else "posix.system"


_SAMPLES = [
    ("model.safetensors", safetensors_file(), "safetensors"),
    ("x.npy", npy_file(), "npy"),
    ("model.onnx", onnx_file(), "onnx"),
    ("model.gguf", b"GGUF\x03\x00\x00\x00" + b"\x00" * 24, "gguf"),
    ("model.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, "hdf5"),
    ("config.json", b'{"layers": 2, "act": "relu"}\n', "json"),
    ("README.md", "# Model\n\nA caf\u00e9 model.\n".encode(), "text"),
    ("arrays.npz", zip_of({"a.npy": npy_file()}, deflate=True), "zip"),
    ("weights.bin", bytes(range(256)) * 4, "unknown"),
    ("plain.pkl", plain_pickle(), "pickle"),
    ("plain2.pkl", plain_pickle(protocol=2), "pickle"),
    ("plain0.pkl", b"(lp0\nI1\naI2\na.", "pickle"),
    ("evil.pkl", os_system_pickle(), "pickle-import"),
    ("evil0.pkl", os_system_pickle(protocol=0), "pickle-import"),
    ("model.pt", torch_zip(), "pickle-import"),
    ("benign.pt", torch_zip(plain_pickle(protocol=2)), "pickle"),
]


# Named by file name: a zip's bytes carry the time it was made, so ids built from them
# differ between pytest-xdist workers.
@pytest.mark.parametrize(("name", "content", "label"), _SAMPLES, ids=[s[0] for s in _SAMPLES])
def test_formats_by_content(name: str, content: bytes, label: str) -> None:
    found = detect_format(name, content)
    assert (found.path, found.format) == (name, label), found
    assert found.format in FORMAT_LABELS


def test_the_name_does_not_decide() -> None:
    assert detect_format("weights.safetensors", os_system_pickle()).format == "pickle-import"
    assert detect_format("model.pkl", safetensors_file()).format == "safetensors"
    assert detect_format("model.onnx", b"\x08\x09garbage").format == "unknown"


def test_a_pickle_records_the_globals_it_imports() -> None:
    evil = detect_format("evil.pkl", os_system_pickle())
    assert evil.imports == [_OS_SYSTEM]
    torch = detect_format("model.pt", torch_zip())
    assert torch.imports == ["torch._utils._rebuild_tensor_v2"]
    assert "archive/data.pkl" in torch.note
    plain = detect_format("plain.pkl", plain_pickle(protocol=2))
    assert plain.format == "pickle"
    assert set(plain.imports) <= {"__builtin__.set", "_codecs.encode"}


def test_scanning_never_runs_the_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "created-by-unpickling"
    data = open_file_pickle(str(marker))
    found = detect_format("evil.pkl", data)
    assert found.format == "pickle-import"
    assert found.imports == ["io.open"]
    assert not marker.exists()
    assert scan_pickle(data).format == "pickle-import"
    assert not marker.exists()


def test_a_stream_is_read_like_bytes() -> None:
    assert detect_format("m.pt", io.BytesIO(torch_zip())).format == "pickle-import"


def test_stacked_pickles_are_each_scanned() -> None:
    """PyTorch's legacy format: several pickles in a row; an import in a later one counts."""
    data = plain_pickle(protocol=2) + TORCH_DATA_PKL + b"\x00raw storage bytes"
    found = detect_format("legacy.pt", data)
    assert found.format == "pickle-import"
    assert "torch._utils._rebuild_tensor_v2" in found.imports
    assert detect_format("first.pkl", plain_pickle(protocol=2) + b"\x00raw").format == "pickle"


def test_an_object_npy_is_labelled_by_its_pickled_body() -> None:
    body = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00)Rq\x01."
    found = detect_format("objects.npy", npy_file(descr="|O", body=body))
    assert found.format == "pickle-import"
    assert found.imports == ["numpy.core.multiarray._reconstruct"]
    in_zip = detect_format("objects.npz", zip_of({"o.npy": npy_file(descr="|O", body=body)}))
    assert in_zip.format == "pickle-import"


def test_what_fickling_cannot_analyse_fails_closed() -> None:
    # Protocol 0 FLOAT is an opcode fickling does not model; truncated is not a pickle.
    found = detect_format("float0.pkl", b"F1.5\n.")
    assert found.format == "pickle-import"
    assert "not scanned" in found.note
    assert detect_format("cut.pkl", os_system_pickle()[:-3]).format == "pickle-import"


def test_a_pickle_over_the_scan_limit_is_recorded_unscanned() -> None:
    limits = Limits(max_pickle_scan_bytes=1024)
    big = plain_pickle() + b"\x00" * 2048
    found = detect_format("big.pkl", big, limits=limits)
    assert found.format == "pickle-import"
    assert "scan limit" in found.note


def test_a_zip_bomb_is_bounded() -> None:
    """A data.pkl that inflates to 20 MiB from a few KiB: not inflated past the limit."""
    bomb = zip_of({"archive/data.pkl": b"\x00" * (20 * 1024 * 1024)}, deflate=True)
    assert len(bomb) < 100_000
    found = detect_format("bomb.pt", bomb, limits=Limits(max_pickle_scan_bytes=1024 * 1024))
    assert found.format == "pickle-import"
    assert "over the scan limit" in found.note


def test_too_many_members_are_not_listed() -> None:
    archive = zip_of({f"m{i}.txt": b"x" for i in range(11)})
    found = detect_format("many.zip", archive, limits=Limits(max_archive_members=10))
    assert found.format == "pickle-import"
    assert "11 members" in found.note
    assert detect_format("many.zip", archive).format == "zip"


def test_nested_archives_are_opened_to_a_depth() -> None:
    inner = torch_zip()
    assert detect_format("outer.zip", zip_of({"inner.pt": inner})).format == "pickle-import"
    deep = zip_of({"a.zip": zip_of({"b.zip": zip_of({"c.txt": b"x"})})})
    found = detect_format("deep.zip", deep, limits=Limits(max_archive_depth=1))
    assert found.format == "pickle-import"
    assert "nested deeper" in found.note
    assert detect_format("deep.zip", deep, limits=Limits(max_archive_depth=3)).format == "zip"


def test_a_broken_zip_fails_closed() -> None:
    found = detect_format("broken.pt", b"PK\x03\x04" + b"\x00" * 100)
    assert found.format == "pickle-import"
    assert "end record" in found.note


def test_lookalikes_are_not_taken_for_formats() -> None:
    # A length prefix that points past the end, a header that is not tensors.
    assert detect_format("a", b"\x10\x00\x00\x00\x00\x00\x00\x00{}").format == "unknown"
    fake = b'{"t": {"dtype": "F32"}}'
    assert detect_format("b", len(fake).to_bytes(8, "little") + fake).format != "safetensors"
    # Text that starts like a protocol 0 opcode but is not a pickle.
    assert detect_format("c.txt", b"I am a sentence.").format == "text"
    assert detect_format("d", b"").format == "text"


def test_an_unknown_escape_in_a_protocol_0_string_is_still_a_pickle() -> None:
    # pickle.loads accepts b"S'a\\-b'" (escape_decode only warns), so the scanner must
    # too: under -W error the warning would otherwise end the scan (CI runs that way).
    plain = b"S'a\\-b'\np0\n."
    assert detect_format("plain.pkl", plain).format == "pickle"
    hostile = b"cos\nsystem\n(S'echo \\-'\ntR."
    found = detect_format("hostile.pkl", hostile)
    assert found.format == "pickle-import"
    assert found.imports == ["os.system"]
