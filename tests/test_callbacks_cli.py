"""`gateway callbacks import`, `gateway callbacks` and `gateway orders` on a temporary folder."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import main

# Served two days ago by the real clock: the import refuses services older than 30 days.
SERVED = (datetime.now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
GOOD = f"A1,id_card,LZ-DC-01,13912345678,{SERVED},王五\n"


def run(tmp_path: Path, *args: str) -> int:
    return main(["--data-dir", str(tmp_path / "data"), *args])


def csv(
    tmp_path: Path,
    rows: str,
    header: str = "reference,kind,unit,citizen_number,served_at,citizen_name",
) -> Path:
    path = tmp_path / "items.csv"
    path.write_text(header + "\n" + rows, encoding="utf-8")
    return path


def test_import_adds_good_rows_and_names_bad_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Good rows are added, repeats counted, bad rows named by line; exit 1 when any is refused."""
    assert run(tmp_path, "db", "seed") == 0
    rows = GOOD + f"A2,parking,LZ-DC-01,13912345678,{SERVED},\n" + GOOD
    rows += f"A3,id_card,LZ-DC-01,12345,{SERVED},\n"
    capsys.readouterr()
    assert run(tmp_path, "callbacks", "import", str(csv(tmp_path, rows))) == 1
    out, err = capsys.readouterr()
    assert "1 served items added, 1 already reported, 2 refused" in out
    assert "items.csv:3: served item 'A2': kind: unknown kind code 'parking'" in err
    assert "items.csv:5: served item 'A3': citizen_number" in err

    assert run(tmp_path, "callbacks", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == {"pending": 1}
    assert summary["overall"] is None
    assert run(tmp_path, "callbacks") == 0
    assert "待回访" in capsys.readouterr().out
    assert run(tmp_path, "orders", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_import_refuses_a_file_without_the_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV missing required columns is refused whole, naming them."""
    path = csv(tmp_path, "A1,id_card\n", header="reference,kind")
    assert run(tmp_path, "callbacks", "import", str(path)) == 2
    assert "missing columns unit, citizen_number, served_at" in capsys.readouterr().err


def test_import_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not there is named."""
    assert run(tmp_path, "callbacks", "import", str(tmp_path / "nope.csv")) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_reports_without_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before any demo or migration, the reports say there is no store and create none."""
    assert run(tmp_path, "callbacks") == 1
    assert run(tmp_path, "orders") == 1
    assert "no store" in capsys.readouterr().err
    assert not (tmp_path / "data" / "gateway.sqlite3").exists()


def test_db_seed_refuses_an_officer_landline_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway db seed FILE` with an officer's fixed line, or a file that is not there:
    one line naming the row or the file, never a traceback."""
    seed = tmp_path / "city.toml"
    seed.write_text(
        '[[unit]]\ncode = "X"\nname = "鲁州市公安局"\nkind = "city"\n\n'
        '[[officer]]\ncode = "X001"\nname = "王五"\nunit = "X"\nrole = "chief"\n'
        'mobile = "0539 812 3456"\n',
        encoding="utf-8",
    )
    assert run(tmp_path, "db", "seed", str(seed)) != 0
    err = capsys.readouterr().err
    assert "city.toml: officer[0] (X001): mobile:" in err and "fixed line" in err
    assert "Traceback" not in err
    assert run(tmp_path, "db", "seed", str(tmp_path / "none.toml")) != 0
    err = capsys.readouterr().err
    assert "none.toml: cannot read the seed file" in err and "Traceback" not in err
