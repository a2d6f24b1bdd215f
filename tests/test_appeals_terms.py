"""A case's owner and its accept/answer deadlines, by category, in working days."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.appeals.exceptions import TermsError
from gateway.appeals.service import AppealService, SubmissionInput
from gateway.appeals.terms import parse_category_units, parse_terms
from gateway.calendar import SHANGHAI
from gateway.clock import ManualClock
from gateway.config import AppealsSection
from gateway.store import Store
from gateway.store.seed import demo_city, load_seed

NOISE = "楼下烧烤摊每天晚上营业到凌晨两点，噪音太大，孩子无法睡觉，请派出所管一管。"
BIKE = "我的电动车上周在幸福小区车棚被盗，报案后一直没有消息，想问问进展。"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


async def service_at(
    tmp_path: Path, moment: str, settings: AppealsSection | None = None
) -> AsyncIterator[AppealService]:
    clock = ManualClock(local(moment).astimezone(UTC))
    async with Store.open(tmp_path / "gateway.sqlite3", clock) as store:
        await load_seed(store.units, demo_city(), "demo-city.toml")
        yield AppealService(store, clock, settings or AppealsSection())


@pytest.fixture
async def before_national_day(tmp_path: Path) -> AsyncIterator[AppealService]:
    """Monday 28 September 2026, 10:00 in Shanghai, three days before the National Day."""
    async for service in service_at(tmp_path, "2026-09-28 10:00"):
        yield service


def appeal(reference: str, text: str = NOISE, **changes: str) -> SubmissionInput:
    values = {
        "channel": "web",
        "reference": reference,
        "citizen_number": "13912345678",
        "category": "complaint",
        "text": text,
    }
    values.update(changes)
    return SubmissionInput(**values)


async def test_deadlines_skip_the_holiday_and_count_the_make_up_saturday(
    before_national_day: AppealService,
) -> None:
    """A complaint (accept 1, answer 5 working days) on 28 Sep: accepted by the end of 29 Sep,
    answered by the end of Saturday 10 Oct, a make-up working day; the hinted unit owns it."""
    intake = await before_national_day.submit(appeal("W1", unit_hint="LZ-DC-01"))
    found = await before_national_day.case_file(intake.case.number)
    assert found.terms is not None
    assert found.terms.accept_by == local("2026-09-30 00:00")
    assert found.terms.answer_by == local("2026-10-11 00:00")
    assert found.case.deadline == found.terms.answer_by
    assert (found.case.owner_unit_code, found.terms.owner_source) == ("LZ-DC-01", "hint")
    assert found.case.status == "assigned" and not found.terms.estimated


async def test_the_category_default_owns_a_case_without_a_hint(tmp_path: Path) -> None:
    """No hint: the category's default unit owns the case; no default: it waits for the desk."""
    settings = AppealsSection(category_units=("complaint=LZ-DUCHA",))
    async for service in service_at(tmp_path, "2026-11-30 10:00", settings):
        complaint = await service.submit(appeal("W1"))
        other = await service.submit(appeal("W2", BIKE, category="help"))
        found = await service.case_file(complaint.case.number)
        assert found.terms is not None
        assert (found.case.owner_unit_code, found.terms.owner_source) == ("LZ-DUCHA", "category")
        unowned = await service.case_file(other.case.number)
        assert unowned.terms is not None
        assert (unowned.case.owner_unit_code, unowned.terms.owner_source) == (None, "none")
        assert unowned.case.status == "open"
        # help: answered within one working day, Mon 30 Nov → end of Tue 1 Dec
        assert unowned.terms.answer_by == local("2026-12-02 00:00")


async def test_a_deadline_into_a_year_without_data_is_estimated_and_said(
    tmp_path: Path,
) -> None:
    """A complaint on 28 Dec 2026 runs into 2027: counted Monday–Friday, flagged, in the history."""
    async for service in service_at(tmp_path, "2026-12-28 10:00"):
        intake = await service.submit(appeal("W1"))
        found = await service.case_file(intake.case.number)
        assert found.terms is not None and found.terms.estimated
        assert found.terms.answer_by == local("2027-01-05 00:00")
        assert "估算" in found.history[-1].note


async def test_a_split_case_gets_its_own_terms(before_national_day: AppealService) -> None:
    """The case split off gets deadlines and an owner from its own first submission."""
    first = await before_national_day.submit(appeal("W1", unit_hint="LZ-DC-01"))
    second = await before_national_day.submit(
        appeal("W2", BIKE, unit_hint="LZ-DC-01", category="complaint")
    )
    new = await before_national_day.split(first.case.number, [second.submission.id], actor="S01")
    assert new.terms is not None and new.terms.owner_source == "hint"
    assert new.case.owner_unit_code == "LZ-DC-01"


async def test_a_default_unit_that_does_not_exist_stops_the_start(tmp_path: Path) -> None:
    """category_units naming no unit is refused at start, naming the setting."""
    settings = AppealsSection(category_units=("complaint=LZ-NOWHERE",))
    async for service in service_at(tmp_path, "2026-11-30 10:00", settings):
        with pytest.raises(TermsError, match="LZ-NOWHERE"):
            await service.check_units()


@pytest.mark.parametrize(
    ("items", "message"),
    [(("complaint",), "category=UNIT"), (("gossip=LZ",), "not a case category")],
)
def test_bad_category_units_are_refused(items: tuple[str, ...], message: str) -> None:
    """A malformed category=UNIT item is refused, naming it."""
    with pytest.raises(TermsError, match=message):
        parse_category_units(items)


def test_bad_terms_are_refused() -> None:
    """A terms file missing a category, with a bad count, or accept after answer is refused."""
    good = {c: {"accept": 1, "answer": 5} for c in ("complaint", "suggestion", "consultation")}
    good |= {c: {"accept": 1, "answer": 5} for c in ("booking", "report", "help")}
    good |= {c: {"accept": 1, "answer": 5} for c in ("praise", "other")}
    assert parse_terms(good)["help"].answer_days == 5
    with pytest.raises(TermsError, match="praise"):
        parse_terms({k: v for k, v in good.items() if k != "praise"})
    with pytest.raises(TermsError, match="0–365"):
        parse_terms(good | {"help": {"accept": 1, "answer": "5"}})
    with pytest.raises(TermsError, match="accept comes after"):
        parse_terms(good | {"help": {"accept": 6, "answer": 5}})
    with pytest.raises(TermsError, match="gossip"):
        parse_terms(good | {"gossip": {"accept": 1, "answer": 5}})
