"""Text templates: loaded once from ``templates.toml``, checked, rendered.

Loading refuses a template whose worst case (every variable at its declared
maximum length) would exceed its ``max_parts``, so an over-long order is found
when the gateway starts, not when a chief's phone is reached. Rendering checks
the variables (none missing, none unknown, none too long) and counts the parts
again on the real text.

Pure code apart from reading the file; no network, no store.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.sms.exceptions import (
    EmptyBody,
    MessageTooLong,
    MissingVariable,
    TemplateError,
    UnexpectedVariable,
    UnknownTemplate,
)
from gateway.sms.segments import SegmentCount, count_segments

PURPOSES = (
    "rectification_order",
    "rating_request",
    "booking",
    "overdue_reminder",
    "report",
    "case",
)
AUDIENCES = ("officer", "citizen")
# Twilio refuses bodies over 1,600 characters (error 21617); a template never gets near.
MAX_BODY_CHARS = 1600
# What a masked number looks like in a text: 139****5678 (11 characters).
_WORST_FILL = "国"  # one UCS-2 unit: a declared maximum is a count of characters
_TEMPLATE_KEYS = {"purpose", "audience", "max_parts", "body", "vars", "truncate", "masked"}


@dataclass(frozen=True)
class Template:
    name: str
    purpose: str
    audience: str
    max_parts: int
    body: str
    vars: Mapping[str, int]  # name -> longest allowed value, in characters
    truncate: frozenset[str]
    masked: frozenset[str]


@dataclass(frozen=True)
class RenderedText:
    template: str
    body: str
    segments: SegmentCount


def mask_for_text(number: str) -> str:
    """A phone number as a text shows it to a third party: ``13912345678`` → ``139****5678``."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if number.strip().startswith("+86") or number.strip().startswith("0086"):
        digits = digits[2:] if number.strip().startswith("+") else digits[4:]
    if len(digits) < 8:
        return "*" * len(digits)
    return digits[:3] + "****" + digits[-4:]


class TemplateSet:
    """All templates of one file, checked. Build with :func:`load_templates`."""

    def __init__(self, signature: str, templates: Mapping[str, Template], source: str) -> None:
        self.signature = signature
        self.source = source
        self._templates = dict(templates)

    def names(self) -> list[str]:
        return sorted(self._templates)

    def get(self, name: str) -> Template:
        try:
            return self._templates[name]
        except KeyError:
            raise UnknownTemplate(name, list(self._templates)) from None

    def render(self, name: str, variables: Mapping[str, object]) -> RenderedText:
        """The text of template ``name`` with ``variables``; raises a TemplateError subclass."""
        template = self.get(name)
        values: dict[str, str] = {}
        for key in variables:
            if key not in template.vars:
                raise UnexpectedVariable(name, key)
        for key, limit in template.vars.items():
            if key not in variables or variables[key] is None:
                raise MissingVariable(name, key)
            text = str(variables[key]).strip()
            if key in template.masked:
                text = mask_for_text(text)
            if len(text) > limit:
                if key in template.truncate:
                    text = text[: limit - 1] + "…"
                else:
                    raise TemplateError(
                        name, f"variable {key!r} is {len(text)} characters, at most {limit}"
                    )
            values[key] = text
        body = (self.signature + template.body.format_map(values)).strip()
        if not body or body == self.signature.strip():
            raise EmptyBody(name)
        return _checked(name, body, template.max_parts)


def _checked(name: str, body: str, max_parts: int, detail: str = "") -> RenderedText:
    if len(body) > MAX_BODY_CHARS:
        raise MessageTooLong(name, count_segments(body).parts, max_parts, f"{len(body)} characters")
    segments = count_segments(body)
    if segments.parts > max_parts:
        raise MessageTooLong(name, segments.parts, max_parts, detail)
    return RenderedText(name, body, segments)


def _placeholders(name: str, body: str) -> set[str]:
    found: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(body))
    except ValueError as exc:
        raise TemplateError(name, f"body is not a valid template: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise TemplateError(name, f"placeholder {{{field}}} must be a plain {{name}}")
        found.add(field)
    return found


def parse_templates(raw: Mapping[str, Any], source: str) -> TemplateSet:
    """Check a parsed template file; every mistake names the template and the key."""
    signature = raw.get("signature", "")
    if not isinstance(signature, str):
        raise TemplateError("(file)", f"{source}: signature must be a string")
    unknown_top = set(raw) - {"signature", "templates"}
    if unknown_top:
        raise TemplateError("(file)", f"{source}: unknown keys {sorted(unknown_top)}")
    table = raw.get("templates")
    if not isinstance(table, dict) or not table:
        raise TemplateError("(file)", f"{source}: no [templates.NAME] tables")
    templates: dict[str, Template] = {}
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise TemplateError(name, "must be a table")
        unknown = set(spec) - _TEMPLATE_KEYS
        if unknown:
            raise TemplateError(name, f"unknown keys {sorted(unknown)}")
        for key in ("purpose", "audience", "max_parts", "body"):
            if key not in spec:
                raise TemplateError(name, f"{key} is missing")
        purpose, audience, max_parts, body = (
            spec["purpose"],
            spec["audience"],
            spec["max_parts"],
            spec["body"],
        )
        if purpose not in PURPOSES:
            raise TemplateError(name, f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
        if audience not in AUDIENCES:
            raise TemplateError(name, f"audience {audience!r} is not one of {', '.join(AUDIENCES)}")
        if isinstance(max_parts, bool) or not isinstance(max_parts, int) or max_parts < 1:
            raise TemplateError(name, f"max_parts must be a positive integer, got {max_parts!r}")
        if not isinstance(body, str) or not body.strip():
            raise TemplateError(name, "body is empty")
        declared = spec.get("vars", {})
        if not isinstance(declared, dict):
            raise TemplateError(name, "vars must be a table of name = longest length")
        for var, limit in declared.items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise TemplateError(name, f"vars.{var} must be a positive integer, got {limit!r}")
        used = _placeholders(name, body)
        for var in sorted(used - set(declared)):
            raise TemplateError(name, f"placeholder {{{var}}} is not declared in vars")
        for var in sorted(set(declared) - used):
            raise TemplateError(name, f"vars.{var} is declared but the body never uses it")
        truncate = _name_list(name, spec, "truncate", declared)
        masked = _name_list(name, spec, "masked", declared)
        template = Template(
            name, purpose, audience, max_parts, body, dict(declared), truncate, masked
        )
        worst = signature + body.format_map({v: _WORST_FILL * n for v, n in declared.items()})
        _checked(name, worst, max_parts, "worst case with every variable at its declared maximum")
        templates[name] = template
    return TemplateSet(signature, templates, source)


def _name_list(
    name: str, spec: Mapping[str, Any], key: str, declared: Mapping[str, int]
) -> frozenset[str]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TemplateError(name, f"{key} must be a list of variable names")
    for var in value:
        if var not in declared:
            raise TemplateError(name, f"{key} names {var!r}, which is not in vars")
    return frozenset(value)


def load_templates(path: Path | None = None) -> TemplateSet:
    """Load and check a template file (default: the bundled ``templates.toml``)."""
    if path is None:
        text = resources.files("gateway.sms").joinpath("templates.toml").read_text("utf-8")
        source = "templates.toml"
    else:
        source = str(path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise TemplateError("(file)", f"{source}: cannot read: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError("(file)", f"{source}: not valid TOML: {exc}") from None
    return parse_templates(raw, source)
