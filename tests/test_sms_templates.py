"""Templates: checked for their worst-case parts when loaded, variables checked on render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.sms.exceptions import (
    EmptyBody,
    MessageTooLong,
    MissingVariable,
    TemplateError,
    UnexpectedVariable,
    UnknownTemplate,
)
from gateway.sms.templates import load_templates, mask_for_text, parse_templates

ORDER = {
    "unit": "城关派出所",
    "business": "轻微伤害案件办理",
    "case_ref": "LZ2026-000123",
    "reason": "案件进展慢，无人联系",
    "citizen": "+8613800138000",
    "deadline": "12月3日18时",
}


def _one(body: str, max_parts: int = 1, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "purpose": "report",
        "audience": "officer",
        "max_parts": max_parts,
        "body": body,
    }
    spec.update(extra)
    return {"signature": "【鲁州公安】", "templates": {"t": spec}}


def test_bundled_templates_load_and_cover_every_purpose() -> None:
    """The shipped file loads, and each purpose has a template."""
    templates = load_templates()
    purposes = {templates.get(n).purpose for n in templates.names()}
    assert purposes == {
        "rectification_order",
        "rating_request",
        "booking",
        "overdue_reminder",
        "report",
        "case",
    }


def test_rectification_order_carries_case_reason_masked_number_and_deadline() -> None:
    """The chief reads the case, business, reason, masked citizen number and deadline."""
    text = load_templates().render("rectification_order", ORDER)
    assert text.body.startswith("【鲁州公安】责令整改提示")
    for part in ("LZ2026-000123", "轻微伤害案件办理", "案件进展慢", "138****8000", "12月3日18时"):
        assert part in text.body
    assert "13800138000" not in text.body
    assert text.segments.parts <= 3


def test_rating_request_asks_for_1_2_3() -> None:
    """The rating request tells the citizen to reply 1, 2 or 3."""
    text = load_templates().render("rating_request", {"unit": "城关派出所", "business": "户籍办理"})
    assert "回复1满意、2基本满意、3不满意" in text.body


def test_missing_variable_is_named() -> None:
    """A variable the template needs and was not given is refused by name."""
    variables = dict(ORDER)
    del variables["deadline"]
    with pytest.raises(MissingVariable) as info:
        load_templates().render("rectification_order", variables)
    assert info.value.variable == "deadline"


def test_unknown_variable_is_refused() -> None:
    """A variable the template does not use (a typo) is refused by name."""
    with pytest.raises(UnexpectedVariable, match="deadlnie"):
        load_templates().render("rectification_order", {**ORDER, "deadlnie": "x"})


def test_unknown_template_lists_the_known_ones() -> None:
    """Asking for a template that does not exist names the ones that do."""
    with pytest.raises(UnknownTemplate, match="rating_request"):
        load_templates().render("no_such", {})


def test_over_long_variable_is_refused_unless_truncatable() -> None:
    """An over-long case reference is refused; an over-long reason is cut with an ellipsis."""
    templates = load_templates()
    with pytest.raises(TemplateError, match="case_ref"):
        templates.render("rectification_order", {**ORDER, "case_ref": "X" * 21})
    text = templates.render("rectification_order", {**ORDER, "reason": "慢" * 100})
    assert "慢" * 39 + "…" in text.body


def test_template_whose_worst_case_exceeds_its_parts_is_refused_at_load() -> None:
    """Loading refuses a template that would need more parts with maximal variables."""
    with pytest.raises(MessageTooLong, match="worst case"):
        parse_templates(_one("整改{x}", vars={"x": 70}), "test")


def test_undeclared_placeholder_is_refused_at_load() -> None:
    """A placeholder without a declared maximum length is a load error naming it."""
    with pytest.raises(TemplateError, match=r"\{who\}"):
        parse_templates(_one("整改{who}"), "test")


def test_declared_but_unused_variable_is_refused_at_load() -> None:
    """A declared variable the body never uses is a load error naming it."""
    with pytest.raises(TemplateError, match=r"vars\.extra"):
        parse_templates(_one("整改", vars={"extra": 3}), "test")


def test_empty_body_is_refused_at_load() -> None:
    """A template with an empty body does not load."""
    with pytest.raises(TemplateError, match="body is empty"):
        parse_templates(_one("  "), "test")


def test_empty_rendered_text_is_refused(tmp_path: Path) -> None:
    """A template whose text is empty once rendered is refused, not sent."""
    raw = _one("{x}", vars={"x": 5})
    raw["signature"] = ""
    with pytest.raises(EmptyBody, match="empty"):
        parse_templates(raw, "test").render("t", {"x": ""})


def test_bad_toml_file_names_the_file(tmp_path: Path) -> None:
    """A template file that is not TOML is refused with its path."""
    path = tmp_path / "templates.toml"
    path.write_text("[templates.x\n", "utf-8")
    with pytest.raises(TemplateError, match="not valid TOML"):
        load_templates(path)


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("+8613912345678", "139****5678"),
        ("13912345678", "139****5678"),
        ("0086 139 1234 5678", "139****5678"),
        ("123", "***"),
    ],
)
def test_mask_for_text(number: str, shown: str) -> None:
    """A citizen's number appears in a text with its middle four digits hidden."""
    assert mask_for_text(number) == shown


def test_case_texts_fit_their_parts_with_the_longest_answer() -> None:
    """The acceptance text (with its PIN) fits 3 parts and an answer of 200 characters 5."""
    templates = load_templates()
    accepted = templates.render(
        "case_accepted",
        {
            "case_number": "TS20261130-0007",
            "unit": "东关派出所",
            "deadline": "12月07日",
            "pin": "042917",
        },
    )
    assert "TS20261130-0007" in accepted.body and "042917" in accepted.body
    assert accepted.segments.parts <= 3
    answered = templates.render(
        "case_answered",
        {"case_number": "TS20261130-0007", "answer": "答" * 200, "unit": "东关派出所"},
    )
    assert answered.segments.parts <= 5
