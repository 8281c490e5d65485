"""Model card: golden Markdown, sections, front matter, strict card files."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlprov.errors import InvalidInputError, MalformedDocumentError
from mlprov.provenance import (
    MODEL_CARD_PREDICATE_TYPE,
    NO_INFORMATION,
    ModelCardSpec,
    load_card,
    model_card,
    model_card_statement,
)
from support.provenance_samples import CARD_PATH, full_inputs, minimal_inputs

SECTIONS = [
    "## Model details",
    "## Intended use",
    "## Factors",
    "## Metrics",
    "## Evaluation data",
    "## Training data",
    "## Quantitative analyses",
    "## Ethical considerations",
    "## Caveats and recommendations",
]


def _sections(markdown: str) -> dict[str, str]:
    """Section heading -> its body (up to the next ``## `` heading)."""
    result: dict[str, str] = {}
    current = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            current = line
            result[current] = ""
        elif current is not None:
            result[current] += line + "\n"
    return result


def _front_matter(markdown: str) -> dict[str, Any]:
    assert markdown.startswith("---\n")
    end = markdown.index("\n---\n", 4)
    return yaml.safe_load(markdown[4:end])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "make"), [("card-full.md", full_inputs), ("card-minimal.md", minimal_inputs)]
)
def test_golden(golden: Callable[[str, bytes], None], name: str, make: Any) -> None:
    golden(name, model_card(make()).encode("utf-8"))


def test_card_statement_golden(golden: Callable[[str, bytes], None]) -> None:
    golden("card-statement-full.json", model_card_statement(full_inputs()))


@pytest.mark.parametrize("make", [full_inputs, minimal_inputs], ids=["full", "minimal"])
def test_all_sections_in_paper_order(make: Any) -> None:
    markdown = model_card(make())
    positions = [markdown.index(f"\n{heading}\n") for heading in SECTIONS]
    assert positions == sorted(positions)
    assert markdown.endswith("\n")
    assert not markdown.endswith("\n\n")


def test_minimal_card_says_no_information_and_invents_nothing() -> None:
    markdown = model_card(minimal_inputs())
    sections = _sections(markdown)
    for heading in SECTIONS[1:]:
        assert NO_INFORMATION in sections[heading], heading
    # Every sub-section too: each "### " heading is followed by the sentence.
    assert markdown.count("### ") == markdown.count(f"\n\n{NO_INFORMATION}") - 4
    assert "run `" not in markdown  # the builder id is all the minimal sample knows
    assert "Code:" not in markdown
    assert not markdown.startswith("---")  # no metadata to state, so no front matter


def test_full_card_content() -> None:
    markdown = model_card(full_inputs())
    sections = _sections(markdown)
    assert "Gradient-boosted trees scoring" in sections["## Model details"]
    assert "`sha256:" + "3f" * 32 + "`" in sections["## Model details"]
    assert "(clean checkout)" in sections["## Model details"]
    assert "s3cr3t" not in markdown
    assert "- base: `credit-risk/6`" in sections["## Model details"]
    assert "Automated rejection without human review." in sections["## Intended use"]
    assert "- segment: corporate, retail" in sections["## Factors"]
    quantitative = sections["## Quantitative analyses"]
    assert "| auc | 0.912 |" in quantitative
    assert "### By segment" in quantitative
    assert "| retail | 0.88 | 0.66 |" in quantitative
    assert "| corporate | 0.93 | — |" in quantitative
    assert "### By region, segment" in quantitative
    assert "| eu | retail | 0.871 |" in quantitative
    assert "median | capped" in sections["## Training data"]  # prose is kept as written
    # ...but a pipe inside a table cell is escaped, so it cannot add a column.
    assert "| Thin credit files \\| lower scores. |" in sections["## Ethical considerations"]
    assert "holdout-2025q4" in sections["## Evaluation data"]
    assert "applications-2025" not in sections["## Evaluation data"]
    assert "Applicants under 25" in sections["## Ethical considerations"]
    assert "Re-train every quarter." in sections["## Caveats and recommendations"]
    assert NO_INFORMATION in sections["## Caveats and recommendations"]  # no trade-offs given


def test_hugging_face_front_matter() -> None:
    front = _front_matter(model_card(full_inputs()))
    assert front["license"] == "apache-2.0"
    assert front["tags"] == ["credit", "tabular"]
    assert front["datasets"] == ["applications-2025", "holdout-2025q4"]
    assert front["metrics"] == ["auc", "f1", "rows"]
    (entry,) = front["model-index"]
    assert entry["name"] == "credit-risk"
    (result,) = entry["results"]
    assert result["task"] == {"type": "binary-classification"}
    assert result["dataset"] == {"name": "holdout-2025q4", "type": "holdout-2025q4"}
    assert {"type": "auc", "value": 0.912} in result["metrics"]
    assert all("[" not in m["type"] for m in result["metrics"])  # subgroups stay in the body


def test_no_model_index_when_the_evaluation_dataset_is_unknown() -> None:
    inputs = full_inputs()
    assert inputs.card is not None
    card = inputs.card.model_copy(
        update={"evaluation_data": inputs.card.evaluation_data.model_copy(update={"datasets": []})}
    )
    markdown = model_card(dataclasses.replace(inputs, card=card))
    assert "model-index" not in _front_matter(markdown)
    assert "whose role the card does not state" in markdown


def test_card_statement_predicate() -> None:
    inputs = full_inputs()
    statement = json.loads(model_card_statement(inputs))
    assert statement["predicateType"] == MODEL_CARD_PREDICATE_TYPE
    predicate = statement["predicate"]
    assert predicate["markdown"] == model_card(inputs)
    assert predicate["mediaType"] == "text/markdown"
    assert predicate["model"] == {"name": "credit-risk", "version": 7, "digest": inputs.digest}
    assert predicate["card"]["model_details"]["task"] == "binary-classification"
    assert predicate["metrics"]["auc[segment=retail]"] == 0.88


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "intended_use:\n  primary_use: [x]\n",
            "unknown key 'intended_use.primary_use'; did you mean 'primary_uses'?",
        ),
        ("licence: mit\n", "unknown key 'licence'; did you mean 'license'?"),
        ("model_details:\n  task: 3\n", "model_details.task: Input should be a valid string"),
        (
            "ethical_considerations:\n  - mitigation: x\n",
            "missing key 'ethical_considerations[0].name'",
        ),
        (
            "model_details:\n  learning_type: supervized\n",
            "model_details.learning_type: Input should be",
        ),
        ("tags: credit\n", "tags: Input should be a valid list"),
    ],
    ids=["typo-nested", "typo-top", "wrong-type", "missing", "enum", "not-a-list"],
)
def test_card_file_problems_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MalformedDocumentError) as raised:
        load_card(path)
    message = str(raised.value)
    assert expected in message
    assert message.startswith(str(path))
    assert "\n" not in message
    assert raised.value.exit_code == 2


def test_card_file_loads() -> None:
    card = load_card(CARD_PATH)
    assert card.license == "apache-2.0"
    assert card.intended_use.primary_users == ["Credit officers", "Risk analysts"]
    assert ModelCardSpec.parse(card.to_json()) == card


def test_card_naming_an_unrecorded_dataset_is_refused() -> None:
    inputs = minimal_inputs()
    card = ModelCardSpec.parse({"training_data": {"datasets": ["imaginary"]}})
    with pytest.raises(InvalidInputError, match="'imaginary', which version tiny/1 did not"):
        model_card(dataclasses.replace(inputs, card=card))
