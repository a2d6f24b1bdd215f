"""The catalogue of business followed up: categories and kinds of served items.

The data lives in ``catalogue.toml`` beside this module (6 categories, the 22 kinds
of the mission and the appeals desk's answers); an operator may point the gateway at
another file. Loading validates the whole
file and names the file and the entry of the first mistake::

    catalogue = load_catalogue()
    kind = catalogue.kind("id_card")        # Kind(code='id_card', name='居民身份证', ...)
    kind.category.name                      # '窗口服务'
    catalogue.kinds_in("window")            # the five window-service kinds, in file order

Codes are stable identifiers (the store and the voice prompts ``kind/<code>``
refer to them); names are what citizens hear and officers read.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError

__all__ = [
    "Catalogue",
    "CatalogueError",
    "CatalogueFileError",
    "Category",
    "Kind",
    "UnknownCode",
    "default_catalogue_text",
    "load_catalogue",
    "parse_catalogue",
]

CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DEFAULT_CALLBACK_DELAY_HOURS = 24
MAX_CALLBACK_DELAY_HOURS = 30 * 24
# The longest kind name a text carries (``vars.business`` in gateway/sms/templates.toml).
BUSINESS_NAME_MAX = 16
BUNDLED_NAME = "catalogue.toml"

_CATEGORY_KEYS = frozenset({"code", "name"})
_KIND_KEYS = frozenset({"code", "name", "category", "callback", "callback_delay_hours"})


class CatalogueError(GatewayError):
    """Something about the catalogue of business is wrong."""


class CatalogueFileError(CatalogueError):
    """A catalogue file is malformed; names the file, the entry and the reason."""

    def __init__(self, source: str, entry: str, reason: str) -> None:
        super().__init__(f"{source}: {entry}: {reason}" if entry else f"{source}: {reason}")
        self.source = source
        self.entry = entry
        self.reason = reason


class UnknownCode(CatalogueError, LookupError):
    """A category or kind code that the catalogue does not list."""

    def __init__(self, what: str, code: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown {what} code {code!r} (known: {', '.join(known)})")
        self.what = what
        self.code = code


@dataclass(frozen=True)
class Category:
    """One of the six categories of business (执法办案, 警情, …)."""

    code: str
    name: str


@dataclass(frozen=True)
class Kind:
    """One kind of served item and how it is followed up."""

    code: str
    name: str
    category: Category
    callback: bool
    callback_delay: timedelta


@dataclass(frozen=True)
class Catalogue:
    """The categories and kinds of one catalogue file, in file order."""

    categories: tuple[Category, ...]
    kinds: tuple[Kind, ...]
    source: str
    _kinds_by_code: Mapping[str, Kind] = field(init=False, repr=False, compare=False)
    _categories_by_code: Mapping[str, Category] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_kinds_by_code", {k.code: k for k in self.kinds})
        object.__setattr__(self, "_categories_by_code", {c.code: c for c in self.categories})

    def kind(self, code: str) -> Kind:
        """The kind with this code; :class:`UnknownCode` if there is none."""
        try:
            return self._kinds_by_code[code]
        except KeyError:
            raise UnknownCode("kind", code, tuple(self._kinds_by_code)) from None

    def category(self, code: str) -> Category:
        """The category with this code; :class:`UnknownCode` if there is none."""
        try:
            return self._categories_by_code[code]
        except KeyError:
            raise UnknownCode("category", code, tuple(self._categories_by_code)) from None

    def has_kind(self, code: str) -> bool:
        return code in self._kinds_by_code

    def kinds_in(self, category_code: str) -> tuple[Kind, ...]:
        """The kinds of one category, in file order."""
        category = self.category(category_code)
        return tuple(k for k in self.kinds if k.category == category)

    def called_back(self) -> tuple[Kind, ...]:
        """The kinds whose served items get a callback."""
        return tuple(k for k in self.kinds if k.callback)

    def __iter__(self) -> Iterator[Kind]:
        return iter(self.kinds)

    def __len__(self) -> int:
        return len(self.kinds)


def default_catalogue_text() -> str:
    """The text of the bundled catalogue (``gateway/callbacks/catalogue.toml``)."""
    return resources.files("gateway.callbacks").joinpath(BUNDLED_NAME).read_text("utf-8")


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load and validate a catalogue file; the bundled one when ``path`` is None."""
    if path is None:
        return parse_catalogue(default_catalogue_text(), BUNDLED_NAME)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueFileError(str(path), "", f"cannot read the file: {exc}") from None
    return parse_catalogue(text, str(path))


def parse_catalogue(text: str, source: str) -> Catalogue:
    """Validate the TOML ``text`` of a catalogue; ``source`` names it in errors."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueFileError(source, "", f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"category", "kind"})
    if unknown:
        raise CatalogueFileError(source, "", f"unknown tables {unknown} (known: category, kind)")
    raw_categories = _entries(data, "category", source)
    raw_kinds = _entries(data, "kind", source)
    if not raw_categories:
        raise CatalogueFileError(source, "", "no [[category]] entries")
    if not raw_kinds:
        raise CatalogueFileError(source, "", "no [[kind]] entries")

    categories: dict[str, Category] = {}
    for index, raw in enumerate(raw_categories):
        entry = _entry_name("category", index, raw)
        _check_keys(raw, _CATEGORY_KEYS, source, entry)
        code = _code(raw, source, entry)
        if code in categories:
            raise CatalogueFileError(source, entry, f"duplicate category code {code!r}")
        categories[code] = Category(code=code, name=_text(raw, "name", source, entry))

    kinds: dict[str, Kind] = {}
    for index, raw in enumerate(raw_kinds):
        entry = _entry_name("kind", index, raw)
        _check_keys(raw, _KIND_KEYS, source, entry)
        code = _code(raw, source, entry)
        if code in kinds:
            raise CatalogueFileError(source, entry, f"duplicate kind code {code!r}")
        name = _text(raw, "name", source, entry)
        if len(name) > BUSINESS_NAME_MAX:
            raise CatalogueFileError(
                source,
                entry,
                f"name {name!r} is longer than {BUSINESS_NAME_MAX} characters, too long for the"
                " texts that carry it",
            )
        category_code = _text(raw, "category", source, entry)
        if category_code not in categories:
            raise CatalogueFileError(
                source,
                entry,
                f"unknown category {category_code!r} (known: {', '.join(categories)})",
            )
        callback = raw.get("callback", True)
        if not isinstance(callback, bool):
            raise CatalogueFileError(source, entry, "'callback' must be true or false")
        hours = raw.get("callback_delay_hours", DEFAULT_CALLBACK_DELAY_HOURS)
        if isinstance(hours, bool) or not isinstance(hours, int):
            raise CatalogueFileError(source, entry, "'callback_delay_hours' must be a whole number")
        if not 0 <= hours <= MAX_CALLBACK_DELAY_HOURS:
            raise CatalogueFileError(
                source,
                entry,
                f"'callback_delay_hours' must be between 0 and {MAX_CALLBACK_DELAY_HOURS}, "
                f"not {hours}",
            )
        kinds[code] = Kind(
            code=code,
            name=name,
            category=categories[category_code],
            callback=callback,
            callback_delay=timedelta(hours=hours),
        )

    used = {k.category.code for k in kinds.values()}
    for index, code in enumerate(categories):
        if code not in used:
            entry = f"category[{index}] ({code})"
            raise CatalogueFileError(source, entry, "no kind belongs to this category")
    return Catalogue(tuple(categories.values()), tuple(kinds.values()), source)


def _entries(data: dict[str, Any], table: str, source: str) -> list[dict[str, Any]]:
    entries = data.get(table, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CatalogueFileError(source, "", f"'{table}' must be an array of tables [[{table}]]")
    return entries


def _entry_name(table: str, index: int, raw: dict[str, Any]) -> str:
    code = raw.get("code")
    return f"{table}[{index}] ({code})" if isinstance(code, str) and code else f"{table}[{index}]"


def _check_keys(raw: dict[str, Any], allowed: frozenset[str], source: str, entry: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise CatalogueFileError(
            source, entry, f"unknown keys {unknown} (known: {', '.join(sorted(allowed))})"
        )


def _text(raw: dict[str, Any], key: str, source: str, entry: str) -> str:
    value = raw.get(key)
    if value is None:
        raise CatalogueFileError(source, entry, f"{key!r} is missing")
    if not isinstance(value, str) or not value.strip():
        raise CatalogueFileError(source, entry, f"{key!r} must be a non-empty string")
    return value.strip()


def _code(raw: dict[str, Any], source: str, entry: str) -> str:
    code = _text(raw, "code", source, entry)
    if not CODE_PATTERN.match(code):
        raise CatalogueFileError(
            source,
            entry,
            f"code {code!r} must be lower-case ASCII letters, digits and underscores, "
            "starting with a letter (at most 40 characters)",
        )
    return code
