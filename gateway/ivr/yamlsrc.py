"""Reading human-edited YAML: duplicate keys are errors, mappings know their line.

PyYAML keeps the last of two equal keys without a word; in a menu that silently
drops a choice. :func:`load_yaml` reports every such key with both lines, so the
caller can name the node it belongs to.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import yaml


class LineDict(dict[Any, Any]):
    """A mapping read from YAML; ``line`` is where it starts (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


@dataclass(frozen=True)
class Duplicate:
    """A key given twice in one mapping; the first one is kept."""

    key: Any
    first_line: int
    second_line: int

    def __str__(self) -> str:
        return f"key {self.key!r} is used twice (lines {self.first_line} and {self.second_line})"


class YamlSyntaxError(Exception):
    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _Loader(yaml.SafeLoader):
    duplicates: list[Duplicate]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be plain text", key_node.start_mark
            )
        if key in result.key_lines:
            loader.duplicates.append(Duplicate(key, result.key_lines[key], line))
            continue
        result.key_lines[key] = line
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str) -> tuple[Any, list[Duplicate]]:
    """Parse ``text`` into data and the duplicate keys met; raise :class:`YamlSyntaxError`."""
    loader = _Loader(text)
    loader.duplicates = []
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlSyntaxError(line, f"not valid YAML: {reason}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(None, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
