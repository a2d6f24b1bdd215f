"""A case's owner and its deadlines, by category, in working days.

The owner is the unit the submission hinted at, else the category's default unit
(``appeals.category_units``), else none (the desk assigns it). The deadlines to
accept and to answer are the category's working days (``terms.toml``) after the
moment the case was opened, on the working-day calendar. When the deadline runs
into a year the calendar has no data for, Monday–Friday is counted and the terms
say so (``estimated``), rather than refusing the citizen's appeal.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from gateway.appeals.exceptions import TermsError
from gateway.calendar import WorkCalendar, add_working_days, covers
from gateway.clock import parse_utc, utc_iso
from gateway.store.cases import CATEGORIES

OWNER_SOURCES = ("hint", "category", "none")


@dataclass(frozen=True)
class CategoryTerms:
    accept_days: int
    answer_days: int


@dataclass(frozen=True)
class CaseTerms:
    owner_unit: str | None
    owner_source: str
    accept_by: datetime
    answer_by: datetime
    estimated: bool


def parse_terms(data: Mapping[str, Any], source: str = "terms") -> dict[str, CategoryTerms]:
    """Every category's working days; :class:`TermsError` naming the first bad entry."""
    terms: dict[str, CategoryTerms] = {}
    for category in CATEGORIES:
        table = data.get(category)
        if not isinstance(table, Mapping):
            raise TermsError(f"{source}: [{category}] is missing")
        days = []
        for key in ("accept", "answer"):
            value = table.get(key)
            if type(value) is not int or not 0 <= value <= 365:
                raise TermsError(f"{source}: [{category}] {key} must be 0–365 working days")
            days.append(value)
        if days[0] > days[1]:
            raise TermsError(f"{source}: [{category}] accept comes after answer")
        terms[category] = CategoryTerms(days[0], days[1])
    unknown = sorted(set(data) - set(CATEGORIES))
    if unknown:
        raise TermsError(f"{source}: [{unknown[0]}] is not a case category")
    return terms


def load_terms() -> dict[str, CategoryTerms]:
    text = resources.files(__package__).joinpath("terms.toml").read_text("utf-8")
    return parse_terms(tomllib.loads(text), "terms.toml")


def parse_category_units(items: tuple[str, ...]) -> dict[str, str]:
    """``("complaint=LZ-DUCHA", …)`` → {category: unit code}; :class:`TermsError` if malformed."""
    units: dict[str, str] = {}
    for item in items:
        category, sep, unit = item.partition("=")
        category, unit = category.strip(), unit.strip()
        if not sep or not unit:
            raise TermsError(f"appeals.category_units: {item!r} is not category=UNIT")
        if category not in CATEGORIES:
            raise TermsError(f"appeals.category_units: {category!r} is not a case category")
        units[category] = unit
    return units


def case_terms(
    *,
    calendar: WorkCalendar,
    tz: ZoneInfo,
    terms: Mapping[str, CategoryTerms],
    category_units: Mapping[str, str],
    category: str,
    unit_hint: str,
    opened_at: datetime,
) -> CaseTerms:
    """The owner and deadlines of a case of ``category`` opened at ``opened_at``."""
    if unit_hint:
        owner: str | None = unit_hint
        source = "hint"
    elif category in category_units:
        owner, source = category_units[category], "category"
    else:
        owner, source = None, "none"
    days = terms[category]
    accept_by = add_working_days(calendar, opened_at, days.accept_days, tz, strict=False)
    answer_by = add_working_days(calendar, opened_at, days.answer_days, tz, strict=False)
    estimated = not covers(calendar, opened_at, answer_by, tz)
    return CaseTerms(owner, source, accept_by, answer_by, estimated)


async def write_terms(conn: Any, case_id: int, terms: CaseTerms) -> None:
    await conn.execute(
        "INSERT INTO appeal_terms (case_id, owner_source, accept_by, answer_by, estimated)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            case_id,
            terms.owner_source,
            utc_iso(terms.accept_by),
            utc_iso(terms.answer_by),
            int(terms.estimated),
        ),
    )


def terms_from_row(row: Any, owner_unit: str | None) -> CaseTerms:
    return CaseTerms(
        owner_unit=owner_unit,
        owner_source=row["owner_source"],
        accept_by=parse_utc(row["accept_by"]),
        answer_by=parse_utc(row["answer_by"]),
        estimated=bool(row["estimated"]),
    )
