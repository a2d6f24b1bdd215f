"""Served items from the API and from CSV: dates in a plausible range, every item checked
before any is written, documented limits on references and names."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.demo.stack import Stack
from gateway.limits import MAX_NAME, MAX_NOTE, MAX_REFERENCE
from tests.test_callbacks_api import call, item, stack

__all__ = ["stack"]  # the running gateway fixture, shared with the callbacks API tests


def ago(stack: Stack, **delta: float) -> str:
    return (stack.clock.now() - timedelta(**delta)).isoformat()


async def test_batch_with_implausible_dates_answers_per_item_and_retries_cleanly(
    stack: Stack,
) -> None:
    """Year 0001, year 9999, too old and too far ahead are refused per item; the good ones are
    stored once; the same batch again gives duplicates and the same refusals, never a 500."""
    batch = [
        item("D1", stack),
        item("D2", stack, served_at="0001-01-01T00:00:00"),
        item("D3", stack, served_at="9999-12-31T23:59:59+14:00"),
        item("D4", stack, served_at=ago(stack, days=31)),
        item("D5", stack, served_at=ago(stack, minutes=-30)),
        item("D6", stack, served_at=ago(stack, minutes=-2)),  # within the clock skew
    ]
    status, body = await call(stack, "POST", "/api/served-items", batch)
    assert status == 207
    results = body["results"]
    assert [r["result"] for r in results] == [
        "added",
        "refused",
        "refused",
        "refused",
        "refused",
        "added",
    ]
    assert {r["field"] for r in results if r["result"] == "refused"} == {"served_at"}
    assert "more than 30 days ago" in results[3]["reason"]
    assert "in the future" in results[4]["reason"]
    status, again = await call(stack, "POST", "/api/served-items", batch)
    assert status == 207
    assert [r["result"] for r in again["results"]] == [
        "duplicate",
        "refused",
        "refused",
        "refused",
        "refused",
        "duplicate",
    ]


async def test_one_item_of_year_one_is_422(stack: Stack) -> None:
    """A single item served in year 1 is a 422 naming served_at, and nothing is stored."""
    status, body = await call(
        stack, "POST", "/api/served-items", item("Y1", stack, served_at="0001-01-01T00:00:00")
    )
    assert (status, body["error"], body["details"]["field"]) == (
        422,
        "invalid_served_item",
        "served_at",
    )
    assert await stack.store.callbacks.item_by_reference("Y1") is None


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"reference": "R" * 100_000}, "reference", f"longer than {MAX_REFERENCE}"),
        ({"reference": "R\x001"}, "reference", "control character U+0000"),
        ({"reference": "2026/11/R1"}, "reference", "slash"),
        ({"reference": "   "}, "reference", "empty"),
        ({"citizen_name": "李" * (MAX_NAME + 1)}, "citizen_name", f"longer than {MAX_NAME}"),
        ({"citizen_name": "李四\n"}, "citizen_name", None),
        ({"officer": "J\x0700013"}, "officer", "control character U+0007"),
    ],
)
async def test_references_and_names_within_limits(
    stack: Stack, changes: dict[str, str], field: str, reason: str | None
) -> None:
    """References and names out of the documented limits are refused naming field and limit
    (a name's surrounding whitespace is trimmed, not refused)."""
    status, body = await call(
        stack, "POST", "/api/served-items", [{**item("L1", stack), **changes}]
    )
    result = body["results"][0]
    if reason is None:
        assert (status, result["result"]) == (201, "added")
        assert result["item"]["citizen_name"] == "李四"
        return
    assert (status, result["result"], result["field"]) == (207, "refused", field)
    assert reason in result["reason"]
    assert len(result["reference"]) <= MAX_REFERENCE


async def test_over_long_references_in_urls_are_404(stack: Stack) -> None:
    """A reference over the limit in a URL cannot exist: 404 without a lookup."""
    status, body = await call(stack, "GET", "/api/served-items/" + "R" * 2000)
    assert (status, body["error"]) == (404, "not_found")
    status, body = await call(
        stack, "POST", "/api/orders/" + "O" * 500 + "/report", {"actor": "J1"}
    )
    assert (status, body["error"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"actor": "J" * (MAX_NAME + 1)}, "actor"),
        ({"actor": "J00013", "note": "整改" * MAX_NOTE}, "note"),
        ({"actor": "J00013", "note": "done\x00"}, "note"),
    ],
)
async def test_order_report_fields_within_limits(
    stack: Stack, body: dict[str, str], field: str
) -> None:
    """An order report with an over-long actor or note, or a NUL in it, is a 400 naming it."""
    status, answer = await call(stack, "POST", "/api/orders/RO-1/report", body)
    assert (status, answer["error"], answer["details"]["field"]) == (400, "bad_report", field)


# -- the CSV import ----------------------------------------------------------------

SERVED = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
HEADER = "reference,kind,unit,citizen_number,served_at,citizen_name\n"


def import_file(tmp_path: Path) -> Path:
    path = tmp_path / "items.csv"
    path.write_text(
        HEADER
        + f"C1,id_card,LZ-DC-01,13912345678,{SERVED},王五\n"
        + "C2,id_card,LZ-DC-01,13912345678,0001-01-01T00:00:00,\n"
        + f"C3,id_card,LZ-DC-01,13912345678,{SERVED},赵六\n"
        + f"C/4,id_card,LZ-DC-01,13912345678,{SERVED},\n"
        + f"C5,id_card,LZ-DC-01,13912345678,{SERVED}\n"
        + f"C6,id_card,LZ-DC-01,13912345678,{SERVED},钱七\n",
        encoding="utf-8",
    )
    return path


def run(tmp_path: Path, *args: str) -> int:
    return main(["--data-dir", str(tmp_path / "data"), *args])


@pytest.mark.usefixtures("restore_logging")
def test_csv_import_names_each_bad_row_and_imports_the_good(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every row is checked first: each bad one is named by line, every good one imported."""
    assert run(tmp_path, "db", "seed") == 0
    capsys.readouterr()
    assert run(tmp_path, "callbacks", "import", str(import_file(tmp_path))) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "items.csv:3: served item 'C2': served_at:" in err
    assert "items.csv:5: served item 'C/4': reference: holds a slash" in err
    assert "items.csv:6: not as many fields as the header names" in err
    assert "3 served items added, 0 already reported, 3 refused" in out


@pytest.mark.usefixtures("restore_logging")
def test_csv_import_all_or_none_imports_nothing_when_a_row_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --all-or-none one bad row means no row is written, each bad one still named;
    a clean file is then imported whole."""
    assert run(tmp_path, "db", "seed") == 0
    capsys.readouterr()
    path = import_file(tmp_path)
    assert run(tmp_path, "callbacks", "import", "--all-or-none", str(path)) == 1
    out, err = capsys.readouterr()
    assert "3 rows refused; nothing imported (--all-or-none)" in out
    assert err.count("items.csv:") == 3
    assert run(tmp_path, "callbacks", "--json") == 0
    assert '"items": {}' in capsys.readouterr().out
    good = [line for line in path.read_text(encoding="utf-8").splitlines()[1:] if "王五" in line]
    path.write_text(HEADER + "\n".join(good) + "\n", encoding="utf-8")
    assert run(tmp_path, "callbacks", "import", "--all-or-none", str(path)) == 0
    assert "1 served items added" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("key", "reason"), [("K" * 100_000, "longer than 64"), ("key\x00", "U+0000"), ("", "empty")]
)
async def test_text_idempotency_key_within_limits(stack: Stack, key: str, reason: str) -> None:
    """A text's idempotency key is a reference: over-long, NUL or empty is a 400 naming it."""
    body = {"to": "13912345678", "template": "rating_request", "idempotency_key": key}
    status, answer = await call(stack, "POST", "/api/sms/messages", body)
    assert (status, answer["details"]["field"]) == (400, "idempotency_key")
    assert reason in answer["message"]


async def test_a_store_failure_mid_batch_writes_none_of_it(stack: Stack) -> None:
    """A batch whose third item the store refuses (a failing write) leaves none of the batch
    stored, and the same batch is added whole once the store takes writes again."""
    async with stack.store.db.transaction() as conn:
        await conn.execute(
            "CREATE TRIGGER fail_batch BEFORE INSERT ON served_items"
            " WHEN NEW.reference = 'MB3' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    batch = [item(f"MB{n}", stack) for n in range(1, 6)]
    status, _ = await call(stack, "POST", "/api/served-items", batch)
    assert status >= 500
    for n in range(1, 6):
        assert await stack.store.callbacks.item_by_reference(f"MB{n}") is None
    async with stack.store.db.transaction() as conn:
        await conn.execute("DROP TRIGGER fail_batch")
    status, body = await call(stack, "POST", "/api/served-items", batch)
    assert status == 201, body
    assert [r["result"] for r in body["results"]] == ["added"] * 5
