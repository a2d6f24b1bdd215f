"""The catalogue of business followed up: the bundled data and the loader's checks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.callbacks.catalogue import (
    BUSINESS_NAME_MAX,
    Catalogue,
    CatalogueFileError,
    UnknownCode,
    load_catalogue,
    parse_catalogue,
)
from gateway.sms.templates import load_templates
from gateway.store.units import TEXT_NAME_MAX

GOOD = """
[[category]]
code = "window"
name = "窗口服务"

[[kind]]
code = "id_card"
name = "居民身份证"
category = "window"
callback_delay_hours = 12

[[kind]]
code = "residence_permit"
name = "居住证"
category = "window"
callback = false
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.toml"
    path.write_text(text, "utf-8")
    return path


def _error(tmp_path: Path, text: str) -> CatalogueFileError:
    path = _write(tmp_path, text)
    with pytest.raises(CatalogueFileError) as info:
        load_catalogue(path)
    assert str(path) in str(info.value), "the error names the file"
    return info.value


def test_bundled_catalogue_has_six_categories_and_twenty_two_kinds() -> None:
    """The shipped catalogue lists the 6 categories and 22 kinds of the mission, and the
    appeals desk's answers (appeal_answer) among the online bureau's services."""
    catalogue = load_catalogue()
    assert [c.name for c in catalogue.categories] == [
        "执法办案",
        "警情",
        "窗口服务",
        "交通处理",
        "网上公安局服务",
        "社会综合",
    ]
    assert len(catalogue.kinds) == len(catalogue) == 23
    counts = [len(catalogue.kinds_in(c.code)) for c in catalogue.categories]
    assert counts == [4, 3, 5, 3, 5, 3]
    assert catalogue.kind("appeal_answer").category.code == "online"


def test_bundled_kinds_have_the_expected_names() -> None:
    """Each kind of the mission is there under its Chinese name and category."""
    catalogue = load_catalogue()
    names = {k.name: k.category.name for k in catalogue}
    assert names["刑事案件报案"] == "执法办案"
    assert names["110接处警"] == "警情"
    assert names["出入境证件"] == "窗口服务"
    assert names["机动车检验"] == "交通处理"
    assert names["微信服务"] == "网上公安局服务"
    assert names["防范宣传（电动车登记）"] == "社会综合"
    assert len(set(names)) == 23


def test_lookup_by_code() -> None:
    """kind() and category() find entries by code and carry the callback settings."""
    catalogue = load_catalogue()
    kind = catalogue.kind("criminal_report")
    assert kind.name == "刑事案件报案"
    assert kind.category is catalogue.category("case")
    assert kind.callback is True
    assert kind.callback_delay == timedelta(hours=72)
    assert catalogue.has_kind("id_card") and not catalogue.has_kind("parking")


def test_unknown_codes_raise_with_the_known_ones() -> None:
    """Looking up a code the catalogue lacks raises UnknownCode listing what exists."""
    catalogue = load_catalogue()
    with pytest.raises(UnknownCode, match=r"unknown kind code 'parking'.*id_card"):
        catalogue.kind("parking")
    with pytest.raises(UnknownCode, match="unknown category code 'sports'"):
        catalogue.kinds_in("sports")
    with pytest.raises(LookupError):
        catalogue.category("sports")


def test_a_custom_file_loads_with_defaults(tmp_path: Path) -> None:
    """callback defaults to true and the delay to 24 hours; false and explicit hours are kept."""
    catalogue = load_catalogue(_write(tmp_path, GOOD))
    assert isinstance(catalogue, Catalogue)
    id_card = catalogue.kind("id_card")
    permit = catalogue.kind("residence_permit")
    assert id_card.callback is True and id_card.callback_delay == timedelta(hours=12)
    assert permit.callback is False and permit.callback_delay == timedelta(hours=24)
    assert catalogue.called_back() == (id_card,)
    assert catalogue.source == str(tmp_path / "catalogue.toml")


def test_kinds_are_frozen() -> None:
    """Categories and kinds are immutable values."""
    kind = load_catalogue().kind("id_card")
    with pytest.raises(AttributeError):
        kind.name = "x"  # type: ignore[misc]


def test_duplicate_kind_code_names_the_entry(tmp_path: Path) -> None:
    """A kind code used twice is refused, naming the second entry."""
    text = GOOD + '\n[[kind]]\ncode = "id_card"\nname = "身份证"\ncategory = "window"\n'
    error = _error(tmp_path, text)
    assert error.entry == "kind[2] (id_card)"
    assert "duplicate kind code 'id_card'" in str(error)


def test_duplicate_category_code_is_refused(tmp_path: Path) -> None:
    """A category code used twice is refused."""
    text = '[[category]]\ncode = "window"\nname = "窗口"\n' + GOOD
    error = _error(tmp_path, text)
    assert error.entry == "category[1] (window)"
    assert "duplicate category code" in error.reason


def test_unknown_category_is_refused(tmp_path: Path) -> None:
    """A kind whose category is not listed is refused, naming both."""
    text = GOOD + '\n[[kind]]\ncode = "parking"\nname = "停车"\ncategory = "traffic"\n'
    error = _error(tmp_path, text)
    assert error.entry == "kind[2] (parking)"
    assert "unknown category 'traffic' (known: window)" in error.reason


@pytest.mark.parametrize(
    ("kind_body", "entry", "reason"),
    [
        ('code = "x_ray"\ncategory = "window"', "kind[2] (x_ray)", "'name' is missing"),
        ('code = "x_ray"\nname = "  "\ncategory = "window"', "kind[2] (x_ray)", "non-empty"),
        ('name = "甲"\ncategory = "window"', "kind[2]", "'code' is missing"),
        ('code = "X-Ray"\nname = "甲"\ncategory = "window"', "kind[2] (X-Ray)", "lower-case"),
        ('code = "x_ray"\nname = "甲"', "kind[2] (x_ray)", "'category' is missing"),
        (
            'code = "x_ray"\nname = "甲"\ncategory = "window"\ncallback = "yes"',
            "kind[2] (x_ray)",
            "true or false",
        ),
        (
            'code = "x_ray"\nname = "甲"\ncategory = "window"\ncallback_delay_hours = 1.5',
            "kind[2] (x_ray)",
            "whole number",
        ),
        (
            'code = "x_ray"\nname = "甲"\ncategory = "window"\ncallback_delay_hours = -1',
            "kind[2] (x_ray)",
            "between 0 and 720",
        ),
        (
            'code = "x_ray"\nname = "甲"\ncategory = "window"\ndelay = 3',
            "kind[2] (x_ray)",
            "unknown keys ['delay']",
        ),
    ],
)
def test_bad_kind_entries_are_refused(
    tmp_path: Path, kind_body: str, entry: str, reason: str
) -> None:
    """A kind with a missing, empty, malformed or unknown key is refused with its entry named."""
    error = _error(tmp_path, GOOD + "\n[[kind]]\n" + kind_body + "\n")
    assert error.entry == entry
    assert reason in error.reason


def test_category_without_kinds_is_refused(tmp_path: Path) -> None:
    """A category no kind belongs to is most likely a typo and is refused."""
    error = _error(tmp_path, '[[category]]\ncode = "traffic"\nname = "交通处理"\n' + GOOD)
    assert error.entry == "category[0] (traffic)"
    assert "no kind belongs" in error.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[[kind\n", "not valid TOML"),
        (GOOD + "\n[extra]\na = 1\n", "unknown tables ['extra']"),
        ('kind = "id_card"\n[[category]]\ncode = "a"\nname = "甲"\n', "array of tables"),
        ('[[category]]\ncode = "a"\nname = "甲"\n', "no [[kind]] entries"),
        ("", "no [[category]] entries"),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, text: str, reason: str) -> None:
    """A file that is not TOML, has unknown tables or lacks entries is refused with the reason."""
    error = _error(tmp_path, text)
    assert reason in error.reason


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    """A missing file raises CatalogueFileError naming the path, not a bare OSError."""
    path = tmp_path / "absent.toml"
    with pytest.raises(CatalogueFileError, match=r"absent\.toml: cannot read the file"):
        load_catalogue(path)


def test_parse_catalogue_names_the_given_source() -> None:
    """parse_catalogue uses the caller's source name in its errors."""
    with pytest.raises(CatalogueFileError, match=r"^upload\.toml: no \[\[category\]\]"):
        parse_catalogue("", "upload.toml")


def test_a_kind_name_too_long_for_a_text_is_refused(tmp_path: Path) -> None:
    """A kind whose name no text could carry is refused at load, naming the entry."""
    long_name = "居民身份证异地受理挂失申报及临时身份证办理"  # 21 characters
    error = _error(tmp_path, GOOD.replace('name = "居民身份证"', f'name = "{long_name}"'))
    assert "kind[0] (id_card)" in str(error) and "longer than 16 characters" in str(error)


def test_the_name_limits_match_what_the_templates_declare() -> None:
    """Unit and kind names are checked against the lengths the SMS templates allow."""
    templates = load_templates()
    for name in templates.names():
        declared = templates.get(name).vars
        if "unit" in declared:
            assert declared["unit"] == TEXT_NAME_MAX, name
        if "business" in declared:
            assert declared["business"] == BUSINESS_NAME_MAX, name
