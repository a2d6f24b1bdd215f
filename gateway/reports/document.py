"""A report as parts of figures, tables and notes, and its HTML page.

Every report (daily log, weekly report, agenda) is built as a :class:`Document`; the
HTML page (:func:`render_html`) and the PDF (:mod:`gateway.reports.pdf`) are two views
of the same document, so they never disagree. The page is self-contained (its style
inline, no script, nothing fetched), fit for the screen and for printing, and every
value is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    numeric: tuple[int, ...] = ()  # columns aligned right
    details: list[list[str]] | None = None  # per row: lines shown under it (a history)
    marks: list[str] | None = None  # per row: a colour class (red, yellow, green) or ""
    empty: str = "无"


@dataclass(frozen=True)
class Part:
    heading: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    title: str
    subtitle: str
    parts: list[Part]


_STYLE = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Zen Hei","Microsoft YaHei",sans-serif;
margin:2em auto;max-width:60em;color:#222;line-height:1.5}
h1{font-size:1.6em;margin:0 0 .2em}h2{font-size:1.2em;border-bottom:2px solid #b22;
padding-bottom:.2em;margin-top:1.6em}p.sub{color:#666;margin:0}
table{border-collapse:collapse;width:100%;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.figures{display:flex;flex-wrap:wrap;gap:.6em}.figure{border:1px solid #ddd;
padding:.4em .8em;min-width:8em}.figure b{display:block;font-size:1.4em}
tr.red td:first-child{border-left:6px solid #c00}
tr.yellow td:first-child{border-left:6px solid #e90}
tr.green td:first-child{border-left:6px solid #090}.empty{color:#888}
td.history{background:#fafafa;font-size:.88em;color:#444}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}tr{break-inside:avoid}}
"""


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = []
    for index, row in enumerate(table.rows):
        mark = table.marks[index] if table.marks else ""
        cls = f' class="{escape(mark)}"' if mark else ""
        cells = "".join(
            f'<td class="n">{escape(v)}</td>' if i in table.numeric else f"<td>{escape(v)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
        lines = table.details[index] if table.details else []
        if lines:
            items = "<br>".join(escape(line) for line in lines)
            body.append(
                f'<tr class="history"><td class="history" colspan="{len(table.headers)}">'
                f"{items}</td></tr>"
            )
    if not table.rows:
        body.append(
            f'<tr><td colspan="{len(table.headers)}" class="empty">{escape(table.empty)}</td></tr>'
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _part(part: Part) -> str:
    out = [f"<section><h2>{escape(part.heading)}</h2>"]
    if part.figures:
        cells = "".join(
            f'<div class="figure"><b>{escape(value)}</b>{escape(label)}</div>'
            for label, value in part.figures
        )
        out.append(f'<div class="figures">{cells}</div>')
    out.extend(f"<p>{escape(note)}</p>" for note in part.notes)
    out.extend(_table(table) for table in part.tables)
    out.append("</section>")
    return "".join(out)


def render_html(document: Document) -> str:
    """The document as one self-contained HTML page."""
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(document.title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{escape(document.title)}</h1>"
        f'<p class="sub">{escape(document.subtitle)}</p></header>'
        f"<main>{''.join(_part(p) for p in document.parts)}</main></body></html>"
    )
