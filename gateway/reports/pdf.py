"""Printable PDFs of the reports, with the Chinese font embedded (fpdf2).

A :class:`~gateway.reports.document.Document` is laid out on A4 landscape pages:
the title, each part's figures as a row of label/value cells, its notes and its
tables (a row's history in a full-width cell under it; a unit's colour as a coloured
first cell). The CJK font is embedded as a subset of the glyphs used, so the file
prints the same on a machine without any Chinese font.

The font is ``reports.pdf_font`` when set, else the first found of Debian's
``fonts-noto-cjk``, ``fonts-wqy-zenhei``, ``fonts-wqy-microhei`` and
``fonts-droid-fallback`` (the project's scripts install ``fonts-noto-cjk``). In a font
collection (``.ttc``) the face for simplified Chinese is chosen.

Building a PDF is CPU work (the font is parsed and subset): callers run
:func:`render_pdf` in a thread.
"""

from __future__ import annotations

from pathlib import Path

from fontTools.ttLib import TTCollection
from fpdf import FPDF
from fpdf.fonts import FontFace

from gateway.reports.document import Document, Part, Table
from gateway.reports.errors import FontMissing

# Where Debian's packages put a CJK font, best first.
FONT_CANDIDATES = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
)
FONT = "cjk"
_COLOURS = {"red": (204, 0, 0), "yellow": (230, 150, 0), "green": (0, 150, 0)}


def find_font(configured: str = "") -> Path:
    """The CJK font to embed (see the module docstring); :class:`FontMissing` if none."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FontMissing(f"reports.pdf_font {configured!r} is not a file")
        return path
    for path in FONT_CANDIDATES:
        if path.is_file():
            return path
    raise FontMissing(
        "no CJK font for the PDFs: install Debian's fonts-noto-cjk, or set reports.pdf_font"
        f" (looked for {', '.join(str(p) for p in FONT_CANDIDATES)})"
    )


def _face_index(path: Path) -> int:
    """In a collection, the face for simplified Chinese (its family name says SC)."""
    if path.suffix.lower() not in (".ttc", ".otc"):
        return 0
    collection = TTCollection(str(path), lazy=True)
    try:
        for index, font in enumerate(collection.fonts):
            family = font["name"].getDebugName(1) or ""
            if family.endswith(" SC") or "SC " in family or "GB" in family:
                return index
        return 0
    finally:
        collection.close()


class _Pdf(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.report_title = title
        self.set_auto_page_break(auto=True, margin=12)
        self.set_margins(12, 12, 12)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(FONT, size=8)
        self.set_text_color(120, 120, 120)
        self.cell(0, 5, f"{self.report_title} · 第 {self.page_no()} 页", align="C")
        self.set_text_color(0, 0, 0)


def render_pdf(document: Document, font: Path) -> bytes:
    """The document as a PDF with ``font`` embedded (a subset)."""
    pdf = _Pdf(document.title)
    pdf.set_title(document.title)
    pdf.set_creator("gateway")
    collection = {"collection_font_number": _face_index(font)}
    if font.suffix.lower() not in (".ttc", ".otc"):
        collection = {}
    pdf.add_font(FONT, "", str(font), **collection)  # type: ignore[arg-type]
    pdf.add_page()
    pdf.set_font(FONT, size=16)
    pdf.multi_cell(0, 9, document.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=9)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(0, 5, document.subtitle, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    for part in document.parts:
        _part(pdf, part)
    return bytes(pdf.output())


def _part(pdf: FPDF, part: Part) -> None:
    pdf.ln(3)
    pdf.set_font(FONT, size=12)
    pdf.set_draw_color(180, 30, 30)
    pdf.multi_cell(0, 7, part.heading, border="B", new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(0, 0, 0)
    pdf.ln(1)
    pdf.set_font(FONT, size=9)
    if part.figures:
        per_row = 4
        for start in range(0, len(part.figures), per_row):
            chunk = part.figures[start : start + per_row]
            line = "    ".join(f"{label}：{value}" for label, value in chunk)
            pdf.multi_cell(0, 5.5, line, new_x="LMARGIN", new_y="NEXT")
    for note in part.notes:
        pdf.multi_cell(0, 5, note, new_x="LMARGIN", new_y="NEXT")
    for table in part.tables:
        _table(pdf, table)


def _table(pdf: FPDF, table: Table) -> None:
    pdf.ln(1)
    columns = len(table.headers)
    heading = FontFace(fill_color=(235, 235, 235))
    # A table of a few columns (a count per channel) needs no full page width.
    width = min(pdf.epw, 60.0 * columns) if columns <= 3 else pdf.epw
    with pdf.table(
        width=width,
        align="LEFT",
        headings_style=heading,
        line_height=5,
        text_align="LEFT",
        first_row_as_headings=True,
        padding=1,
    ) as grid:
        head = grid.row()
        for title in table.headers:
            head.cell(title)
        if not table.rows:
            grid.row().cell(table.empty, colspan=columns)
        for index, values in enumerate(table.rows):
            mark = table.marks[index] if table.marks else ""
            row = grid.row()
            for column, value in enumerate(values):
                style = None
                if column == 0 and mark in _COLOURS:
                    style = FontFace(color=_COLOURS[mark], emphasis=None)
                align = "RIGHT" if column in table.numeric else "LEFT"
                row.cell(value, style=style, align=align)
            lines = table.details[index] if table.details else []
            if lines:
                detail = FontFace(fill_color=(248, 248, 248), size_pt=8)
                grid.row().cell("\n".join(lines), colspan=columns, style=detail)
    pdf.ln(1)
