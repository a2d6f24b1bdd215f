"""Load units and officers from a TOML seed file (``seeds/demo-city.toml`` is the demo city)."""

from __future__ import annotations

import asyncio
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.phone import InvalidPhoneNumber, Use, to_e164
from gateway.store.db import StoreError
from gateway.store.units import TEXT_NAME_MAX, UnitRepository


def demo_city() -> str:
    """The text of the bundled demo city."""
    return resources.files("gateway.store.seeds").joinpath("demo-city.toml").read_text("utf-8")


async def load_seed(units: UnitRepository, text: str, source: str) -> tuple[int, int]:
    """Add (or update) every unit and officer in ``text``; return their counts.

    Every row is checked before the first is written, so a refused file changes
    nothing: a unit whose name is too long for a text needs an ``abbreviation`` that
    fits, and an officer's ``mobile`` must be able to receive texts (no fixed line)."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StoreError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"unit", "officer"}
    if unknown:
        raise StoreError(f"{source}: unknown tables {sorted(unknown)} (known: unit, officer)")
    unit_rows: list[dict[str, Any]] = data.get("unit", [])
    officer_rows: list[dict[str, Any]] = data.get("officer", [])
    mobiles: list[str | None] = []
    for index, unit in enumerate(unit_rows):
        where = f"{source}: unit[{index}]"
        _require(unit, ("code", "name", "kind"), where)
        _check_text_name(unit, where)
    for index, officer in enumerate(officer_rows):
        where = f"{source}: officer[{index}]"
        _require(officer, ("code", "name", "unit", "role"), where)
        mobile = officer.get("mobile")
        if mobile is not None:
            try:
                mobile = to_e164(str(mobile), use=Use.TEXT)
            except InvalidPhoneNumber as exc:
                raise StoreError(f"{where} ({officer['code']}): mobile: {exc.reason}") from None
        mobiles.append(mobile)
    for unit in unit_rows:
        await units.add_unit(
            unit["code"], unit["name"], unit["kind"], unit.get("parent"), unit.get("abbreviation")
        )
    for officer, mobile in zip(officer_rows, mobiles, strict=True):
        await units.add_officer(
            officer["code"], officer["name"], officer["unit"], officer["role"], mobile
        )
    return len(unit_rows), len(officer_rows)


def _check_text_name(unit: dict[str, Any], where: str) -> None:
    """A unit's name must fit in a text, or its abbreviation must."""
    short = unit.get("abbreviation")
    if short is not None and (not isinstance(short, str) or not short.strip()):
        raise StoreError(f"{where} ({unit['code']}): abbreviation must be a non-empty string")
    if short is not None and len(short) > TEXT_NAME_MAX:
        raise StoreError(
            f"{where} ({unit['code']}): abbreviation {short!r} is longer than"
            f" {TEXT_NAME_MAX} characters"
        )
    if len(unit["name"]) > TEXT_NAME_MAX and short is None:
        raise StoreError(
            f"{where} ({unit['code']}): name {unit['name']!r} is longer than {TEXT_NAME_MAX}"
            " characters, too long for a text: give an abbreviation"
        )


async def load_seed_file(units: UnitRepository, path: Path) -> tuple[int, int]:
    try:
        text = await asyncio.to_thread(path.read_text, "utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: cannot read the seed file: {exc}") from None
    return await load_seed(units, text, str(path))


def _require(item: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if not isinstance(item.get(key), str) or not item[key]:
            raise StoreError(f"{where}: {key!r} is missing or not a string")
