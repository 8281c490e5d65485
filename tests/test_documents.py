"""The one reader of untrusted JSON and YAML (mlprov.documents): hostile documents are
refused with one line and no traceback, quickly, before recursion or big-number
conversion can fail; ordinary documents read as JSON would."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mlprov.config import Limits
from mlprov.documents import load_json, load_yaml, parse_number
from mlprov.errors import DocumentSyntaxError, MalformedDocumentError

DEEP = 100_000
HUGE_INT = b"1" + b"0" * 100_000  # 10**100000: 100,001 digits
# Nine times as many laughs per level: nine levels of aliases make 387 million strings.
BILLION_LAUGHS = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    b"%c: &%c [%s]\n" % (name, name, b",".join([b"*%c" % previous] * 9))
    for previous, name in zip(b"abcdefgh", b"bcdefghi", strict=True)
)


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


JSON_REFUSED: dict[str, tuple[bytes, str]] = {
    "100k brackets": (b"[" * DEEP + b"]" * DEEP, "nests deeper than 64"),
    "100k objects": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "nests deeper than 64"),
    "deep with brackets in strings": (b'["[[[",' * 70 + b"1" + b"]" * 70, "nests deeper"),
    "10**100000": (HUGE_INT, "number of 100001 characters"),
    "10**100000 in an object": (b'{"seed": ' + HUGE_INT + b"}", "number of 100001 characters"),
    "long float": (b"0." + b"1" * 300, "number of 302 characters"),
    "1e999": (b'{"lr": 1e999}', "not finite"),
    "-1E400": (b"[-1E400]", "not finite"),
    "NaN": (b'{"loss": NaN}', "NaN is not a number"),
    "Infinity": (b"[Infinity]", "Infinity is not a number"),
    "-Infinity": (b"[-Infinity]", "-Infinity is not a number"),
    "duplicate key": (b'{"a": 1, "a": 2}', "repeats the key 'a'"),
    "nested duplicate key": (b'{"a": {"b": 1, "c": [{"d": 1, "d": 1}]}}', "repeats the key 'd'"),
    "invalid UTF-8": (b'{"a": "caf\xe9"}', "not UTF-8 text (byte 10)"),
    "lone surrogate": (b'{"a": "\\ud800"}', "not valid Unicode"),
    "empty": (b"  \n", "is empty"),
    "truncated": (b'{"a": 1', "not valid JSON"),
    "unbalanced": (b"[[]", "not valid JSON"),
}

YAML_REFUSED: dict[str, tuple[bytes, str]] = {
    "100k flow brackets": (b"a: " + b"[" * DEEP + b"]" * DEEP, "nests deeper than 64"),
    "block nesting": (
        b"a:\n" + b"".join(b"  " * i + b"-\n" for i in range(1, 200)),
        "nests deeper than 64",
    ),
    "nested block sequences on one line": (b"- " * 300 + b"1", "nests deeper than 64"),
    "10**100000": (b"seed: " + HUGE_INT, "number of 100001 characters"),
    "1.0e+999": (b"lr: 1.0e+999", "not a finite number"),
    ".inf": (b"lr: .inf", "not a finite number"),
    ".nan": (b"loss: .nan", "not a finite number"),
    "duplicate key": (b"a: 1\na: 2\n", "repeats the key 'a'"),
    "nested duplicate key": (b"a:\n  b: 1\n  b: 2\n", "line 3: repeats the key 'b'"),
    "alias": (b"a: &x [1, 2]\nb: *x\n", "aliases"),
    "billion laughs": (BILLION_LAUGHS, "aliases"),
    "merge key": (b"base: {a: 1}\nmore:\n  <<: {b: 2}\n", "merge keys"),
    "python tag": (b"a: !!python/object/apply:os.system [ls]\n", "tag"),
    "custom tag": (b"a: !secret x\n", "tag"),
    "binary": (b"a: !!binary aGk=\n", "tag"),
    "date": (b"when: 2026-01-02\n", "reads as a date"),
    "integer key": (b"1: one\n", "the key 1 is not text"),
    "collection key": (b"? [1]\n: x\n", "key must be text"),
    "invalid UTF-8": (b"a: caf\xe9\n", "not UTF-8 text"),
    "lone surrogate": (b'a: "\\ud800"\n', "not valid Unicode"),
    "two documents": (b"a: 1\n---\nb: 2\n", "not valid YAML"),
    "syntax": (b"a: [1, 2\n", "not valid YAML"),
}


def _refused(load: Any, document: bytes, words: str) -> None:
    started = time.perf_counter()
    with pytest.raises(MalformedDocumentError) as raised:
        load(document, "doc")
    elapsed = time.perf_counter() - started
    message = str(raised.value)
    assert words in message, message
    assert message.startswith("doc"), message
    assert "\n" not in message, message
    assert len(message) < 300, message
    assert elapsed < 2, f"took {elapsed:.2f} s"


@pytest.mark.parametrize(("document", "words"), JSON_REFUSED.values(), ids=JSON_REFUSED.keys())
def test_hostile_json_is_refused(document: bytes, words: str) -> None:
    _refused(load_json, document, words)


@pytest.mark.parametrize(("document", "words"), YAML_REFUSED.values(), ids=YAML_REFUSED.keys())
def test_hostile_yaml_is_refused(document: bytes, words: str) -> None:
    _refused(load_yaml, document, words)


@pytest.mark.parametrize("load", [load_json, load_yaml], ids=["json", "yaml"])
def test_size_is_checked_before_decoding(load: Any) -> None:
    # Not UTF-8 and too big: the size is what is reported, so no decoding happened.
    with pytest.raises(MalformedDocumentError, match="more than the limit of 100 bytes"):
        load(b"\xff" * 101, "doc", Limits(max_document_bytes=100))


def test_syntax_errors_are_told_apart_from_limits() -> None:
    with pytest.raises(DocumentSyntaxError):
        load_json(b"[1,", "doc")
    with pytest.raises(DocumentSyntaxError):
        load_yaml(b"a: [1,", "doc")
    with pytest.raises(MalformedDocumentError) as raised:
        load_json(b"[" * 100 + b"]" * 100, "doc")
    assert not isinstance(raised.value, DocumentSyntaxError)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(b'{"a": [1, 2.5, "x", true, null, {}]}', {"a": [1, 2.5, "x", True, None, {}]}),
        pytest.param(b"[" * 64 + b"]" * 64, nested(64), id="exactly 64 deep"),
        pytest.param(b"1" * 200, int("1" * 200), id="200 digits"),
        pytest.param(b"1e-999", 0.0, id="underflow is zero, finite"),
        pytest.param(b'"\\ud83d\\ude00"', "\U0001f600", id="surrogate pair"),
    ],
)
def test_acceptable_json(document: bytes, expected: Any) -> None:
    value = load_json(document, "doc")
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            b"a: 1\nb: [x, 2.5]\nc: {d: null}\n", {"a": 1, "b": ["x", 2.5], "c": {"d": None}}
        ),
        pytest.param(b"a: &anchor 1\n", {"a": 1}, id="anchor without alias"),
        pytest.param(b"when: '2026-01-02'\n", {"when": "2026-01-02"}, id="quoted date"),
        pytest.param(b"a: !!str 12\n", {"a": "12"}, id="core tag"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b"a:" + b" [" * 63 + b"]" * 63, {"a": nested(63)}, id="64 deep"),
    ],
)
def test_acceptable_yaml(document: bytes, expected: Any) -> None:
    assert load_yaml(document, "doc") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", 3), ("-0.5", -0.5), ("1e3", 1000.0), ("+7", 7)],
)
def test_parse_number(text: str, expected: float) -> None:
    value = parse_number(text, "n")
    assert value == expected
    assert type(value) is type(expected)


def test_parse_number_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(MalformedDocumentError, match="not finite"):
        parse_number("1e999", "n")
    with pytest.raises(MalformedDocumentError, match="number of 5000 characters"):
        parse_number("9" * 5000, "n")
