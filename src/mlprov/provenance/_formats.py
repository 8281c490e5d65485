"""Artefact formats, detected by content (magic bytes and structure), never by loading.

:func:`detect_format` takes a file's manifest path and its content (bytes, or a seekable
binary stream the caller opened) and returns a :class:`~mlprov.records.FileFormat`. It
reads the first 64 KiB; only pickles, zip archives and object-dtype ``.npy`` files are
read further, each within :class:`~mlprov.config.Limits`. Nothing is unpickled,
imported or executed (DESIGN.md, "Non-negotiables").

Labels, first match wins:

============== ==========================================================================
``gguf``       ``GGUF`` magic and a version (llama.cpp's GGUF spec, "File Structure")
``npy``        ``\\x93NUMPY`` magic (NEP 1 / numpy ``format``); an object-dtype array's
               body is a pickle and is labelled by its scan instead
``hdf5``       the HDF5 superblock signature ``\\x89HDF\\r\\n\\x1a\\n`` at offset 0
``zip``        ``PK\\x03\\x04`` / ``PK\\x05\\x06``, with no pickle inside; one with
               pickles (PyTorch's ``*/data.pkl``, ``.npz`` with object arrays) gets the
               pickles' label
``pickle``     a pickle (protocol 2+ ``\\x80`` + version, or a protocol 0/1 opcode stream
               that parses to its final STOP) that imports nothing beyond
               :data:`PICKLE_ALLOWED_GLOBALS` and calls nothing else
``pickle-import`` a pickle that imports or calls anything else, or one that could not be
               scanned (too large, not analysable, an archive that cannot be opened)
``safetensors`` 8-byte little-endian header length, then a JSON header whose tensors
               have ``dtype``, ``shape`` and ``data_offsets`` inside the file
``onnx``       a protobuf ``ModelProto`` prefix: ``ir_version`` first, then only
               ModelProto fields in field order up to a ``graph`` that fits in the file
``json``       a JSON document within ``max_document_bytes``
``text``       UTF-8 without control characters (the first 64 KiB)
``unknown``    anything else
============== ==========================================================================

Pickles are scanned by ``fickling`` (Trail of Bits): ``Pickled.load`` decodes opcodes with
the standard library's ``pickletools.genops`` and its ``Interpreter`` builds a Python AST
of what unpickling *would* do, symbolically; neither imports a module nor calls anything
from the pickle. Every GLOBAL, STACK_GLOBAL, INST and extension-registry opcode becomes an
import in that AST and every REDUCE, OBJ, NEWOBJ and BUILD a call, so "imports or calls
anything not allowed" is read from the AST (docs/adr/0040-artefact-formats-by-content.md).
"""

from __future__ import annotations

import ast
import io
import pickletools
import re
import struct
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.documents import load_json
from mlprov.errors import MlprovError
from mlprov.records import FileFormat

__all__ = [
    "FORMAT_LABELS",
    "PICKLE_ALLOWED_GLOBALS",
    "detect_format",
    "scan_pickle",
]

#: Every label :func:`detect_format` gives.
FORMAT_LABELS = (
    "gguf",
    "hdf5",
    "json",
    "npy",
    "onnx",
    "pickle",
    "pickle-import",
    "safetensors",
    "text",
    "unknown",
    "zip",
)

#: Globals a pickle of plain data may import (and call) and still be labelled ``pickle``:
#: the ones Python's own pickler writes for built-in containers at protocols 0-2 (a set,
#: frozenset or bytearray before protocol 4/5 had opcodes for them; bytes at protocol 2
#: as ``_codecs.encode(text, "latin1")``) and ``collections.OrderedDict``. Anything else,
#: PyTorch's ``torch._utils._rebuild_tensor_v2`` and numpy's ``_reconstruct`` included,
#: is an import that runs code of someone's choosing when unpickled: ``pickle-import``.
PICKLE_ALLOWED_GLOBALS = frozenset(
    {
        "builtins.set",
        "builtins.frozenset",
        "builtins.bytearray",
        "__builtin__.set",
        "__builtin__.frozenset",
        "__builtin__.bytearray",
        "_codecs.encode",
        "collections.OrderedDict",
    }
)

_HEAD_BYTES = 64 * 1024
#: Pickles stacked one after another in one file (PyTorch's legacy format has five).
_MAX_STACKED_PICKLES = 16
#: numpy caps .npy headers far below this (``_MAX_HEADER_SIZE`` is 10,000 bytes).
_MAX_NPY_HEADER = 1024 * 1024
_PICKLE_MEMBER_SUFFIXES = (".pkl", ".pickle")
#: The first bytes of a protocol 0/1 pickle: the opcodes a pickler starts with.
_PROTOCOL_0_STARTS = frozenset(b"()]}cNIJKLMFGSTUVXBCi")


@dataclass
class _Finding:
    label: str
    imports: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def detect_format(
    path: str, content: bytes | BinaryIO, *, limits: Limits = DEFAULT_LIMITS
) -> FileFormat:
    """The format of one file by its content. ``content`` is its bytes or a seekable
    binary stream; only the first 64 KiB are read unless it is a pickle, a zip archive
    or an object-dtype ``.npy`` (module docstring)."""
    stream: BinaryIO = io.BytesIO(content) if isinstance(content, bytes | bytearray) else content
    finding = _detect(stream, limits, depth=0, budget=[limits.max_format_scan_bytes])
    return FileFormat(
        path=path,
        format=finding.label,
        imports=sorted(finding.imports),
        note="; ".join(finding.notes),
    )


def _size(stream: BinaryIO) -> int:
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    return size


def _detect(stream: BinaryIO, limits: Limits, *, depth: int, budget: list[int]) -> _Finding:
    size = _size(stream)
    head = stream.read(_HEAD_BYTES)
    if not head:
        return _Finding("text", notes=["empty"])
    if head[:4] == b"GGUF" and len(head) >= 8 and 1 <= struct.unpack_from("<I", head, 4)[0] <= 16:
        return _Finding("gguf")
    if head[:6] == b"\x93NUMPY":
        return _npy(stream, size, head, limits)
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return _Finding("hdf5")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _zip(stream, size, limits, depth=depth, budget=budget)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return _raw_pickle(stream, size, limits)
    if _is_safetensors(stream, size, head, limits):
        return _Finding("safetensors")
    if _is_onnx(head, size):
        return _Finding("onnx")
    if head[0] in _PROTOCOL_0_STARTS and (found := _old_pickle(stream, size, head, limits)):
        return found
    if head.lstrip()[:1] in (b"{", b"[") and size <= limits.max_document_bytes:
        stream.seek(0)
        try:
            load_json(stream.read(size), "file", limits)
        except MlprovError:
            pass
        else:
            return _Finding("json")
    if _is_text(head, truncated=size > len(head)):
        return _Finding("text")
    return _Finding("unknown")


# -- pickles -------------------------------------------------------------------------------


def scan_pickle(data: bytes) -> FileFormat:
    """Scan one pickle's bytes with fickling (never unpickled): ``pickle`` or
    ``pickle-import``, with the globals it imports."""
    finding = _scan_pickle(data)
    return FileFormat(
        path="",
        format=finding.label,
        imports=sorted(finding.imports),
        note="; ".join(finding.notes),
    )


@contextmanager
def _escapes_tolerated() -> Iterator[None]:
    """Decoding a protocol 0 STRING argument (``codecs.escape_decode``) warns on an
    unknown escape such as ``\\-``; ``pickle.loads`` accepts it all the same, so it must
    neither end the scan nor, under ``-W error``, turn a text file into a failed scan."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _unscanned(why: str) -> _Finding:
    return _Finding("pickle-import", notes=[f"{why}: not scanned, recorded as pickle-import"])


def _raw_pickle(stream: BinaryIO, size: int, limits: Limits) -> _Finding:
    if size > limits.max_pickle_scan_bytes:
        return _unscanned(
            f"a pickle of {size} bytes, more than the scan limit of {limits.max_pickle_scan_bytes}"
        )
    stream.seek(0)
    return _scan_pickle(stream.read(size))


def _scan_pickle(data: bytes) -> _Finding:
    """Every pickle stacked at the start of ``data`` (PyTorch's legacy format writes
    several), scanned in turn; bytes after the last one are not pickles and are left."""
    total = _Finding("pickle")
    position, count = 0, 0
    while 0 <= position < len(data) and count < _MAX_STACKED_PICKLES:
        following = data[position : position + 2]
        if count and not (len(following) == 2 and following[0] == 0x80 and 2 <= following[1] <= 5):
            break
        finding, position = _scan_one(data, position)
        count += 1
        _merge(total, finding)
    return total


def _scan_one(data: bytes, start: int) -> tuple[_Finding, int]:
    """One pickle from ``start``: its finding and where it ended (-1 when unknown)."""
    # fickling is imported only when a pickle is met (about 40 ms).
    from fickling.fickle import (  # noqa: PLC0415
        ASTProperties,
        Interpreter,
        Pickled,
    )

    stream = io.BytesIO(data)
    stream.seek(start)
    try:
        with _escapes_tolerated():
            pickled = Pickled.load(stream)
        end = stream.tell()
        # Interpreter builds the AST symbolically; its own limits (opcodes, stack, memo,
        # GET/PUT ratio) bound the time and memory a hostile pickle can cost.
        module = Interpreter(pickled).to_ast()
        properties = ASTProperties()
        properties.visit(module)
    except Exception as e:  # any failure of the scanner fails closed
        # fickling raises its own errors, ValueError, and NotImplementedError for opcodes
        # it does not model (protocol 0 FLOAT, BYTEARRAY8); none of them means "safe".
        detail = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        return _unscanned(f"fickling could not analyse the pickle ({detail})"), -1
    finding = _Finding("pickle")
    allowed_names: set[str] = set()
    for node in properties.imports:
        for dotted, local in _imported(node):
            finding.imports.add(dotted)
            if dotted in PICKLE_ALLOWED_GLOBALS:
                allowed_names.add(local)
            else:
                finding.label = "pickle-import"
    for node in properties.imports:
        for dotted, local in _imported(node):
            if dotted not in PICKLE_ALLOWED_GLOBALS:
                allowed_names.discard(local)
    other_calls = sorted(
        {
            ast.unparse(call.func)[:80]
            for call in properties.calls
            if not (isinstance(call.func, ast.Name) and call.func.id in allowed_names)
        }
    )
    if other_calls and finding.label != "pickle-import":
        # Calls without a disallowed import (copyreg's extension registry, say) are named;
        # calls of what it imports are implied by the imports themselves.
        finding.notes.append(f"calls {', '.join(other_calls[:5])}")
    if other_calls:
        finding.label = "pickle-import"
    return finding, end


def _imported(node: ast.Import | ast.ImportFrom) -> Iterable[tuple[str, str]]:
    """``(module.name, local name)`` for each name an import statement binds."""
    for alias in node.names:
        local = alias.asname or alias.name
        if isinstance(node, ast.ImportFrom):
            yield f"{node.module or ''}.{alias.name}", local
        else:
            yield alias.name, local


def _merge(total: _Finding, part: _Finding) -> None:
    if part.label == "pickle-import" or (part.label == "pickle" and total.label != "pickle-import"):
        total.label = part.label
    total.imports |= part.imports
    total.notes.extend(n for n in part.notes if n not in total.notes)


_GLOBAL_LINE = re.compile(rb"\A[ci][\w.]+\n[\w.]+\n")


def _old_pickle(stream: BinaryIO, size: int, head: bytes, limits: Limits) -> _Finding | None:
    """A protocol 0/1 pickle, recognised conservatively: the whole file decodes as
    pickle opcodes (``pickletools.genops``, which executes nothing) ending at its STOP."""
    if size > limits.max_pickle_scan_bytes:
        # Too large to decode whole: a first GLOBAL or INST line is still unmistakable.
        if _GLOBAL_LINE.match(head):
            return _unscanned(f"a protocol 0 pickle of {size} bytes, more than the scan limit")
        return None
    stream.seek(0)
    data = stream.read(size)
    try:
        end = 0
        with _escapes_tolerated():
            for opcode, _argument, position in pickletools.genops(data):
                if opcode.name == "STOP":
                    end = (position or 0) + 1
                    break
    except (ValueError, EOFError, UnicodeDecodeError):
        return None
    if end != size:
        return None
    return _scan_pickle(data)


# -- archives ------------------------------------------------------------------------------


def _zip_member_count(stream: BinaryIO, size: int) -> int | None:
    """The member count an archive's end-of-central-directory record declares (zip64
    too), read before ``zipfile`` loads the whole central directory; None if absent."""
    tail_length = min(size, 22 + 0xFFFF)
    stream.seek(size - tail_length)
    tail = stream.read(tail_length)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    count = int(struct.unpack_from("<H", tail, at + 10)[0])
    if count != 0xFFFF:
        return count
    at64 = tail.rfind(b"PK\x06\x06", 0, at)
    if at64 < 0 or len(tail) - at64 < 56:
        return None
    return int(struct.unpack_from("<Q", tail, at64 + 32)[0])


def _zip(stream: BinaryIO, size: int, limits: Limits, *, depth: int, budget: list[int]) -> _Finding:
    count = _zip_member_count(stream, size)
    if count is None:
        return _unscanned("a zip archive without a readable end record")
    if count > limits.max_archive_members:
        return _unscanned(
            f"a zip archive of {count} members, more than the limit of {limits.max_archive_members}"
        )
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        return _unscanned(f"a zip archive that cannot be read ({str(e)[:80]})")
    total = _Finding("zip")
    scanned: list[str] = []
    for member in members:
        part = _member(archive, member, limits, depth=depth, budget=budget)
        if part is None:
            continue
        scanned.append(member.filename)
        _merge(total, part)
    if scanned:
        more = f" and {len(scanned) - 5} more" if len(scanned) > 5 else ""
        total.notes.insert(0, f"zip archive; scanned {', '.join(scanned[:5])}{more}")
    return total


def _read_member(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: Limits, budget: list[int]
) -> bytes | str:
    """The member's bytes, or why they were not read (too large, over budget, unreadable).
    Decompression stops one byte past the limit, so a zip bomb costs no more than that."""
    cap = min(limits.max_pickle_scan_bytes, budget[0])
    if member.file_size > cap:
        return f"{member.filename} ({member.file_size} bytes) is over the scan limit"
    try:
        with archive.open(member) as opened:
            data = opened.read(cap + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, ValueError) as e:
        return f"{member.filename} cannot be read ({str(e)[:80]})"
    budget[0] -= len(data)
    if len(data) > cap:
        return f"{member.filename} inflates past the scan limit"
    return data


def _member(
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    limits: Limits,
    *,
    depth: int,
    budget: list[int],
) -> _Finding | None:
    """What one archive member adds: None for members that cannot hold a pickle."""
    try:
        with archive.open(member) as opened:
            head = opened.read(8)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, ValueError) as e:
        return _unscanned(f"{member.filename} cannot be read ({str(e)[:80]})")
    is_pickle = member.filename.lower().endswith(_PICKLE_MEMBER_SUFFIXES) or (
        len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    )
    is_zip = head[:4] in (b"PK\x03\x04", b"PK\x05\x06")
    is_npy = head[:6] == b"\x93NUMPY"
    if not (is_pickle or is_zip or is_npy):
        return None
    data = _read_member(archive, member, limits, budget)
    if isinstance(data, str):
        return _unscanned(data)
    if is_pickle:
        return _scan_pickle(data)
    if is_npy:
        found = _npy(io.BytesIO(data), len(data), data[:_HEAD_BYTES], limits)
        return found if found.label != "npy" else None
    if depth + 1 > limits.max_archive_depth:
        return _unscanned(f"{member.filename} is an archive nested deeper than the limit")
    return _detect(io.BytesIO(data), limits, depth=depth + 1, budget=budget)


# -- tensors and models --------------------------------------------------------------------


_NPY_OBJECT = re.compile(r"""['"][|<>=]?O\d*['"]""")


def _npy(stream: BinaryIO, size: int, head: bytes, limits: Limits) -> _Finding:
    """A ``.npy`` file (NEP 1). An object-dtype array stores its body as a pickle, which
    is what ``np.load(..., allow_pickle=True)`` would unpickle: scan that."""
    major = head[6] if len(head) > 6 else 0
    if major == 1 and len(head) >= 10:
        length, start = struct.unpack_from("<H", head, 8)[0], 10
    elif major in (2, 3) and len(head) >= 12:
        length, start = struct.unpack_from("<I", head, 8)[0], 12
    else:
        return _Finding("npy", notes=["unknown .npy version"])
    if length > _MAX_NPY_HEADER or start + length > size:
        return _Finding("npy", notes=["header out of bounds"])
    stream.seek(start)
    header = stream.read(length).decode("latin-1")
    if not _NPY_OBJECT.search(header):
        return _Finding("npy")
    body = size - start - length
    if body > limits.max_pickle_scan_bytes:
        return _unscanned(f"an object-dtype .npy whose pickled body of {body} bytes is too large")
    found = _scan_pickle(stream.read(body))
    found.notes.insert(0, "object-dtype .npy: its body is a pickle")
    return found


def _is_safetensors(stream: BinaryIO, size: int, head: bytes, limits: Limits) -> bool:
    """safetensors format: u64 little-endian N, an N-byte JSON object of tensors
    ``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus ``__metadata__``), then the
    data, every tensor's offsets inside it."""
    if len(head) < 10 or head[8:9] != b"{":
        return False
    length = int(struct.unpack_from("<Q", head, 0)[0])
    if length < 2 or length > size - 8 or length > limits.max_document_bytes:
        return False
    stream.seek(8)
    try:
        header = load_json(stream.read(length), "safetensors header", limits)
    except MlprovError:
        return False
    if not isinstance(header, dict):
        return False
    data_size = size - 8 - length
    for name, tensor in header.items():
        if name == "__metadata__":
            if not isinstance(tensor, dict):
                return False
            continue
        if not isinstance(tensor, dict) or not isinstance(tensor.get("dtype"), str):
            return False
        shape, offsets = tensor.get("shape"), tensor.get("data_offsets")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            return False
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            return False
    return True


#: ModelProto (onnx.proto3) field number -> protobuf wire type: ir_version 1, producer
#: name/version 2/3, domain 4, model_version 5, doc_string 6, graph 7, opset_import 8,
#: metadata_props 14, training_info 20, functions 25.
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
_ONNX_TEXT_FIELDS = frozenset({2, 3, 4, 6})


def _varint(data: bytes, position: int) -> tuple[int, int] | None:
    value = shift = 0
    while position < len(data) and shift < 64:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    return None


def _is_onnx(head: bytes, size: int) -> bool:
    """An ONNX ModelProto, conservatively: protobuf fields of ModelProto only, in field
    order (as ONNX's serialisers write them), starting with ``ir_version`` (1-64), text
    fields valid UTF-8, up to a ``graph`` (7) whose length fits in the file."""
    position, last = 0, 0
    while position < len(head):
        key = _varint(head, position)
        if key is None:
            return False
        tag, position = key
        number, wire = tag >> 3, tag & 7
        if _ONNX_FIELDS.get(number) != wire or number <= last or (last == 0 and number != 1):
            return False
        last = number
        value = _varint(head, position)
        if value is None:
            return False
        amount, position = value
        if wire == 0:
            if number == 1 and not 1 <= amount <= 64:
                return False
            continue
        if number == 7:
            return position + amount <= size
        if number in _ONNX_TEXT_FIELDS:
            text = head[position : position + amount]
            if len(text) != amount:
                return False
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                return False
        position += amount
    return False


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _is_text(head: bytes, *, truncated: bool) -> bool:
    """UTF-8 without control characters other than tab, line breaks and form feed; a
    head cut inside a character (up to 3 bytes) still counts."""
    for cut in range(4 if truncated else 1):
        try:
            text = (head[: len(head) - cut] if cut else head).decode("utf-8")
        except UnicodeDecodeError:
            continue
        return not _CONTROL.search(text)
    return False
