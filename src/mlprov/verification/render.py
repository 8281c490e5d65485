"""Renderings of a list of checks: for people, JSON, SARIF 2.1.0 and JUnit XML.

The same renderers serve verification reports and policy decisions: anything that is a
sequence of :class:`~mlprov.verification.CheckResult` (an id, passed/failed/skipped, one line
why, the version it is about). Every rendering is deterministic: no clock, no host name,
checks in the order given, so the same report gives the same bytes.

* ``text``: a summary line, then one line per check (``FAIL``, ``PASS``, ``SKIP``).
  Control characters in messages are replaced, so untrusted text quoted in a message
  cannot move a terminal's cursor.
* ``json``: ``{"name", "subject", "passed", "counts", "checks": [...], "facts"?}``.

Text no encoding can carry (lone surrogates, from a JSON ``\\ud800`` escape in an
untrusted document) becomes U+FFFD in every format, so every rendering encodes as UTF-8.
* ``sarif``: SARIF 2.1.0 (OASIS errata 01 schema), one run of tool ``mlprov`` with one
  rule per check id and one result per FAILED check (``level: error``, ``kind: fail``),
  located at the version as a logical location. Passed and skipped checks are not
  results by default, because code-scanning viewers list every result as an alert; with
  ``include_passed`` they are results of ``kind: pass`` / ``notApplicable`` and
  ``level: none`` (SARIF 2.1.0 section 3.27.9).
* ``junit``: one ``<testsuite>`` (inside ``<testsuites>``) with one ``<testcase>`` per
  check: a ``<failure>`` for a failed one, ``<skipped>`` for a skipped one, and the
  message as ``<system-out>`` for a passed one.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from mlprov._version import __version__
from mlprov.errors import InvalidInputError
from mlprov.verification.model import CheckResult, CheckStatus, VerificationReport

__all__ = [
    "REPORT_FORMATS",
    "SARIF_SCHEMA_URI",
    "render_checks",
    "render_json",
    "render_junit",
    "render_report",
    "render_sarif",
    "render_text",
    "sarif_log",
]

REPORT_FORMATS = ("text", "json", "sarif", "junit")

#: The ``$schema`` written into SARIF logs: the OASIS SARIF 2.1.0 errata 01 schema.
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)

#: What each family of check ids proves (the SARIF rules' descriptions).
_RULE_TEXT = {
    "signature": "The model's OMS signature verifies against a trusted model signer and "
    "covers exactly the registry's manifest.",
    "evidence": "A piece of evidence is signed by a signer trusted for the role its kind "
    "needs, is about this version, and has a known predicate type.",
    "provenance": "The SLSA provenance's builder id is vouched for by a trusted builder.",
    "datasets": "The dataset digests in the provenance, the ML-BOM and the registry agree.",
    "lineage": "A lineage ancestor is registered, bound by its digest, and verifies.",
    "registry": "The registry's records equal what the signed documents say.",
    "revocation": "Neither the version nor a signer of its evidence is revoked.",
}

_STATUS_WORD = {CheckStatus.PASSED: "PASS", CheckStatus.FAILED: "FAIL", CheckStatus.SKIPPED: "SKIP"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Lone surrogates (a JSON document may carry "\ud800") cannot be written as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters XML 1.0 cannot carry at all (section 2.2, "Char").
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _counts(checks: Sequence[CheckResult]) -> dict[str, int]:
    return {status.value: sum(1 for c in checks if c.status == status) for status in CheckStatus}


def _passed(checks: Sequence[CheckResult]) -> bool:
    return bool(checks) and all(c.status != CheckStatus.FAILED for c in checks)


def _summary(checks: Sequence[CheckResult], subject: str, name: str) -> str:
    counts = _counts(checks)
    verdict = "passed" if _passed(checks) else "failed"
    if not checks:
        verdict = "failed (no checks ran)"
    return (
        f"{subject}: {name} {verdict} ({counts['failed']} failed, {counts['passed']} passed, "
        f"{counts['skipped']} skipped)"
    )


def _encodable(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def _printable(text: str) -> str:
    return _CONTROL.sub("?", _encodable(text))


def _check_json(check: CheckResult) -> dict[str, Any]:
    return {k: _encodable(v) if isinstance(v, str) else v for k, v in check.to_json().items()}


def render_text(checks: Sequence[CheckResult], *, subject: str, name: str = "verification") -> str:
    """A summary line, then ``FAIL  id  why`` per check, in the order given."""
    width = min(max((len(c.id) for c in checks), default=0), 40)
    lines = [_printable(_summary(checks, subject, name))]
    for check in checks:
        about = f" [{check.subject}]" if check.subject != subject else ""
        lines.append(
            _printable(
                f"  {_STATUS_WORD[check.status]}  {check.id.ljust(width)}  {check.message}{about}"
            )
        )
    return "\n".join(lines) + "\n"


def _json_value(
    checks: Sequence[CheckResult], subject: str, name: str, facts: Mapping[str, Any] | None
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "name": name,
        "subject": subject,
        "passed": _passed(checks),
        "counts": _counts(checks),
        "checks": [_check_json(c) for c in checks],
    }
    if facts is not None:
        value["facts"] = dict(facts)
    return value


def render_json(
    checks: Sequence[CheckResult],
    *,
    subject: str,
    name: str = "verification",
    facts: Mapping[str, Any] | None = None,
) -> str:
    """The checks as indented JSON (UTF-8 text), with ``facts`` when given."""
    return (
        json.dumps(_json_value(checks, subject, name, facts), indent=2, ensure_ascii=False) + "\n"
    )


def _rule_text(check_id: str) -> str:
    family = re.split(r"[.#:]", check_id, maxsplit=1)[0]
    return _RULE_TEXT.get(family, f"The {family} check.")


def sarif_log(
    checks: Sequence[CheckResult],
    *,
    subject: str,
    name: str = "verification",
    include_passed: bool = False,
) -> dict[str, Any]:
    """The SARIF 2.1.0 log as a JSON structure."""
    rule_ids = list(dict.fromkeys(c.id for c in checks))
    rules = [
        {"id": rule_id, "shortDescription": {"text": _rule_text(rule_id)}} for rule_id in rule_ids
    ]
    results = []
    for check in checks:
        if check.status != CheckStatus.FAILED and not include_passed:
            continue
        kind = {
            CheckStatus.FAILED: "fail",
            CheckStatus.PASSED: "pass",
            CheckStatus.SKIPPED: "notApplicable",
        }[check.status]
        results.append(
            {
                "ruleId": check.id,
                "ruleIndex": rule_ids.index(check.id),
                "kind": kind,
                "level": "error" if check.status == CheckStatus.FAILED else "none",
                "message": {"text": _encodable(check.message)},
                "locations": [
                    {"logicalLocations": [{"fullyQualifiedName": check.subject, "kind": "module"}]}
                ],
                "properties": {"subject": check.subject, "status": check.status.value},
            }
        )
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mlprov",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": f"mlprov/{name}/{subject}"},
                "invocations": [{"executionSuccessful": True}],
                "results": results,
                "properties": {
                    "name": name,
                    "subject": subject,
                    "passed": _passed(checks),
                    "counts": _counts(checks),
                },
            }
        ],
    }


def render_sarif(
    checks: Sequence[CheckResult],
    *,
    subject: str,
    name: str = "verification",
    include_passed: bool = False,
) -> str:
    """The checks as a SARIF 2.1.0 log (indented JSON text)."""
    log = sarif_log(checks, subject=subject, name=name, include_passed=include_passed)
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def render_junit(checks: Sequence[CheckResult], *, subject: str, name: str = "verification") -> str:
    """The checks as JUnit XML: one testsuite, one testcase per check."""
    counts = _counts(checks)
    totals = {
        "tests": str(len(checks)),
        "failures": str(counts["failed"]),
        "errors": "0",
        "skipped": str(counts["skipped"]),
        "time": "0",
    }
    suite_name = _xml_text(f"mlprov {name}: {subject}")
    root = ET.Element("testsuites", {"name": _xml_text(f"mlprov {name}"), **totals})
    suite = ET.SubElement(root, "testsuite", {"name": suite_name, **totals})
    for check in checks:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": _xml_text(check.id),
                "classname": _xml_text(f"mlprov.{name}.{check.subject}"),
                "time": "0",
            },
        )
        message = _xml_text(check.message)
        if check.status == CheckStatus.FAILED:
            failure = ET.SubElement(case, "failure", {"message": message, "type": "failed"})
            failure.text = message
        elif check.status == CheckStatus.SKIPPED:
            ET.SubElement(case, "skipped", {"message": message})
        else:
            ET.SubElement(case, "system-out").text = message
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_checks(
    checks: Sequence[CheckResult],
    fmt: str,
    *,
    subject: str,
    name: str = "verification",
    facts: Mapping[str, Any] | None = None,
) -> str:
    """Render in ``fmt`` (one of :data:`REPORT_FORMATS`); ``facts`` go into JSON only.

    Raises InvalidInputError (exit 2) for an unknown format.
    """
    if fmt == "text":
        return render_text(checks, subject=subject, name=name)
    if fmt == "json":
        return render_json(checks, subject=subject, name=name, facts=facts)
    if fmt == "sarif":
        return render_sarif(checks, subject=subject, name=name)
    if fmt == "junit":
        return render_junit(checks, subject=subject, name=name)
    raise InvalidInputError(
        f"unknown report format {fmt[:40]!r}: use one of {', '.join(REPORT_FORMATS)}"
    )


def render_report(report: VerificationReport, fmt: str) -> str:
    """A verification report in ``fmt``; its JSON carries the verified facts too."""
    return render_checks(report.checks, fmt, subject=report.subject, facts=report.facts.to_json())
