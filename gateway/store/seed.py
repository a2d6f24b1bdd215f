"""Load units and officers from a TOML seed file (``seeds/demo-city.toml`` is the demo city)."""

from __future__ import annotations

import asyncio
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.phone import InvalidPhoneNumber, Use, to_e164
from gateway.store.db import StoreError
from gateway.store.units import UnitRepository


def demo_city() -> str:
    """The text of the bundled demo city."""
    return resources.files("gateway.store.seeds").joinpath("demo-city.toml").read_text("utf-8")


async def load_seed(units: UnitRepository, text: str, source: str) -> tuple[int, int]:
    """Add (or update) every unit and officer in ``text``; return their counts."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StoreError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"unit", "officer"}
    if unknown:
        raise StoreError(f"{source}: unknown tables {sorted(unknown)} (known: unit, officer)")
    unit_count = officer_count = 0
    for index, unit in enumerate(data.get("unit", [])):
        where = f"{source}: unit[{index}]"
        _require(unit, ("code", "name", "kind"), where)
        await units.add_unit(unit["code"], unit["name"], unit["kind"], unit.get("parent"))
        unit_count += 1
    for index, officer in enumerate(data.get("officer", [])):
        where = f"{source}: officer[{index}]"
        _require(officer, ("code", "name", "unit", "role"), where)
        mobile = officer.get("mobile")
        if mobile is not None:
            try:
                mobile = to_e164(mobile, use=Use.TEXT)
            except InvalidPhoneNumber as exc:
                raise StoreError(f"{where} ({officer['code']}): mobile: {exc.reason}") from None
        await units.add_officer(
            officer["code"], officer["name"], officer["unit"], officer["role"], mobile
        )
        officer_count += 1
    return unit_count, officer_count


async def load_seed_file(units: UnitRepository, path: Path) -> tuple[int, int]:
    text = await asyncio.to_thread(path.read_text, "utf-8")
    return await load_seed(units, text, str(path))


def _require(item: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if not isinstance(item.get(key), str) or not item[key]:
            raise StoreError(f"{where}: {key!r} is missing or not a string")
