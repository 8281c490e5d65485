"""Artefact files of each format, built by hand (no numpy, torch or onnx needed).

The hostile pickles here are only ever bytes: nothing in the tests unpickles them.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from typing import Any


class _Reduces:
    """Pickles as a call of ``function(*arguments)``: what a hostile pickle does."""

    def __init__(self, function: Any, *arguments: Any) -> None:
        self.function = function
        self.arguments = arguments

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.function, self.arguments


def os_system_pickle(protocol: int = 4) -> bytes:
    """A pickle whose REDUCE would run ``os.system("echo")``."""
    return pickle.dumps(_Reduces(os.system, "echo"), protocol=protocol)


def open_file_pickle(path: str) -> bytes:
    """A pickle whose REDUCE would create ``path`` (``open(path, "w")``)."""
    return pickle.dumps(_Reduces(open, path, "w"), protocol=2)


def plain_pickle(protocol: int = 5) -> bytes:
    """Plain data only: a dict of lists, numbers, strings, bytes and a set."""
    return pickle.dumps(
        {"weights": [1, 2, 3], "name": "m", "raw": b"\x00\x01", "tags": {"a"}, "n": None},
        protocol=protocol,
    )


#: A protocol 2 pickle as PyTorch writes data.pkl: GLOBAL torch._utils._rebuild_tensor_v2
#: called with REDUCE (the arguments simplified to an empty tuple).
TORCH_DATA_PKL = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00)Rq\x01."


def torch_zip(data_pkl: bytes = TORCH_DATA_PKL) -> bytes:
    """A PyTorch-style zip checkpoint: ``archive/data.pkl`` plus raw tensor storage."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/data/0", b"\x00" * 64)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def zip_of(members: dict[str, bytes], *, deflate: bool = False) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def safetensors_file(tensors: int = 2) -> bytes:
    """A valid safetensors file: ``tensors`` float32 vectors of 4 elements."""
    header = {
        f"t{i}": {"dtype": "F32", "shape": [4], "data_offsets": [16 * i, 16 * (i + 1)]}
        for i in range(tensors)
    }
    header["__metadata__"] = {"format": "pt"}  # type: ignore[assignment]
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"\x00" * (16 * tensors)


def npy_file(descr: str = "<f4", body: bytes = b"\x00" * 16) -> bytes:
    """A .npy version 1.0 file (NEP 1): magic, version, header length, header, data."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': (4,), }}"
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    key = varint(number << 3 | wire)
    if isinstance(payload, int):
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def onnx_file() -> bytes:
    """An ONNX ModelProto as its serialisers lay it out: ir_version, producer name and
    version, graph (one node), opset_import."""
    node = _field(4, 2, b"Relu") + _field(1, 2, b"x") + _field(2, 2, b"y")
    graph = _field(1, 2, node) + _field(2, 2, b"g")
    return (
        _field(1, 0, 9)
        + _field(2, 2, b"pytorch")
        + _field(3, 2, b"2.3.0")
        + _field(7, 2, graph)
        + _field(8, 2, _field(2, 0, 17))
    )
