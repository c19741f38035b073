"""PDF → lines with page numbers: the text layer through pdfplumber (words with their places and sizes, and
ruled tables), a page without one (a scan) through OCR (rag/ocr.py); both laid out by rag/layout.py.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rag.errors import DocumentError
from rag.layout import Box, PageBoxes, body_size, drop_furniture, page_lines
from rag.ocr import PageProgress, PageText, ocr_pages
from rag.paragraphs import Line
from rag.tables import Cell, Table, cell_text

MIN_TEXT_LAYER_CHARS = 10  # a page with fewer characters in its text layer and an image on it is a scan
_EDGE = 1.0  # points: a merged cell reaches past a grid line by more than drawing slack


@dataclass
class PdfReading:
    """The lines of a PDF and what reading it took."""

    lines: list[Line] = field(default_factory=list)
    pages: int = 0
    ocr: list[PageText] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "page 3: blank" and the like
    furniture: int = 0  # running heads, footers and page numbers dropped


def _pdf_error(name: str, exc: Exception) -> DocumentError:
    text = f"{type(exc).__name__}: {exc}".strip(": ")
    if "password" in text.lower() or "encrypt" in text.lower():
        return DocumentError(name, "the PDF is encrypted; save a copy without a password and add it again")
    return DocumentError(name, f"not a readable PDF ({text}); open and save it again (print to PDF)")


def read_pdf(data: bytes, name: str, on_page: PageProgress | None = None) -> PdfReading:
    """A PDF's paragraphs as lines, text pages laid out from their text layer and scanned pages OCR'd."""
    try:
        import pdfplumber
    except ImportError as exc:  # pragma: no cover - the ui extra installs it
        raise DocumentError(name, "reading .pdf needs pdfplumber: pip install 'rag[ui]'") from exc
    reading = PdfReading()
    pages: dict[int, PageBoxes] = {}
    scans: list[int] = []
    try:
        with warnings.catch_warnings(), pdfplumber.open(io.BytesIO(data)) as pdf:
            warnings.simplefilter("ignore")
            reading.pages = len(pdf.pages)
            for number, page in enumerate(pdf.pages, start=1):
                if len(page.chars) < MIN_TEXT_LAYER_CHARS and page.images:
                    scans.append(number)
                    continue
                if not page.chars:
                    reading.skipped.append(f"page {number}: blank")
                    continue
                pages[number] = _text_page(page, number)
    except DocumentError:
        raise
    except Exception as exc:
        raise _pdf_error(name, exc) from exc
    for text in _ocr(data, name, scans, on_page):
        reading.ocr.append(text)
        if text.boxes:
            pages[text.page] = text.as_page()
        else:
            reading.skipped.append(f"page {text.page}: a scan in which OCR found no text")
    ordered, reading.furniture = drop_furniture([pages[n] for n in sorted(pages)])
    text_body = body_size([p for p in ordered if not p.ocr])
    scan_body = body_size([p for p in ordered if p.ocr])
    for laid in ordered:
        reading.lines.extend(page_lines(laid, scan_body if laid.ocr else text_body))
    reading.lines = _with_spans(reading.lines)
    return reading


def _ocr(data: bytes, name: str, scans: list[int], on_page: PageProgress | None) -> Iterator[PageText]:
    if not scans:
        return
    try:
        yield from ocr_pages(data, scans, on_page)
    except DocumentError:
        raise
    except Exception as exc:
        raise DocumentError(name, f"OCR of its scanned pages failed ({exc})") from exc


def _with_spans(lines: list[Line]) -> list[Line]:
    """Spans in the text as read: the paragraphs one after another, a blank line between them."""
    out: list[Line] = []
    pos = 0
    for line in lines:
        size = len(line.text)
        out.append(
            Line(
                line.text,
                pos,
                pos + size,
                heading=line.heading,
                blank_before=line.blank_before,
                page=line.page,
                page_breaks=line.page_breaks,
                table=line.table,
                ocr_confidence=line.ocr_confidence,
                indented=line.indented,
            )
        )
        pos += size + 2
    return out


def _text_page(page: Any, number: int) -> PageBoxes:
    """A page's words and ruled tables as boxes; words inside a table of values belong to the table."""
    tables: list[Box] = []
    for found in page.find_tables():
        table = _pdf_table(found)
        if table.is_data():
            x0, top, x1, bottom = found.bbox
            tables.append(Box("", x0, top, x1, bottom, table=table))
    words = page.extract_words(extra_attrs=["size"], keep_blank_chars=False)
    boxes: list[Box] = []
    for w in words:
        cx, cy = (w["x0"] + w["x1"]) / 2, (w["top"] + w["bottom"]) / 2
        if any(t.x0 <= cx <= t.x1 and t.top <= cy <= t.bottom for t in tables):
            continue
        boxes.append(Box(w["text"], w["x0"], w["top"], w["x1"], w["bottom"], size=float(w["size"])))
    return PageBoxes(number, float(page.width), float(page.height), tuple(boxes + tables))


def _pdf_table(found: Any) -> Table:
    """A pdfplumber table as a grid: a position no cell starts at is covered by the cell to its left when
    that cell reaches over it, else by the one above."""
    texts = found.extract()
    rows = found.rows
    xs = sorted({c[0] for c in found.cells})
    tops = [r.bbox[1] for r in rows]
    grid: list[list[Cell]] = []
    bbox: dict[tuple[int, int], tuple[float, float, float, float]] = {}
    for i, row in enumerate(rows):
        out: list[Cell] = []
        for j, cell in enumerate(row.cells):
            if cell is not None:
                out.append(Cell(texts[i][j] or "", (i, j)))
                bbox[(i, j)] = cell
            elif j and _reach(bbox, out[j - 1])[2] > xs[j] + _EDGE:
                out.append(out[j - 1])
            elif i and j < len(grid[i - 1]) and _reach(bbox, grid[i - 1][j])[3] > tops[i] + _EDGE:
                out.append(grid[i - 1][j])
            else:
                out.append(Cell("", (i, j)))
        grid.append(out)
    return Table(tuple(tuple(Cell(cell_text(c.text), c.origin) for c in r) for r in grid))


def _reach(bbox: dict[tuple[int, int], tuple[float, float, float, float]], cell: Cell) -> tuple[float, ...]:
    return bbox.get(cell.origin, (0.0, 0.0, 0.0, 0.0))
