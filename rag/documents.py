"""The only entry to reading document files: bytes → lines (per format) → paragraphs with section, speaker,
page, table and row, and a report of what was found (`DocumentStats`).

Formats: .txt .md .html/.htm (rag/encoding.py decodes them, rag/markup.py reads markup), .docx (here),
.pdf (rag/pdf.py; scanned pages OCR'd by rag/ocr.py), .xlsx and .csv (rag/tables.py), .png and .jpg (OCR).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rag.encoding import MISREADINGS, chinese_word_share, decode, misreading_of
from rag.errors import DocumentError
from rag.layout import body_size, page_lines
from rag.markup import lines_from_html, lines_from_markdown
from rag.ocr import LOW_CONFIDENCE, OcrPending, PageProgress, PageText, ocr_pages
from rag.paragraphs import Line, lines_from_text, paragraphs_from_lines
from rag.pdf import read_pdf
from rag.tables import Cell, Table, cell_text, table_from_csv, tables_from_xlsx
from rag.types import Paragraph

__all__ = [
    "MISREADINGS",
    "DocumentStats",
    "Line",
    "ParsedDocument",
    "chinese_word_share",
    "decode",
    "find_documents",
    "lines_from_html",
    "lines_from_markdown",
    "lines_from_text",
    "misreading_of",
    "paragraphs_from_bytes",
    "paragraphs_from_lines",
    "parse_document",
    "read_document",
    "sha256_of",
    "sniff_kind",
]

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm"}
TABLE_SUFFIXES = {".xlsx", ".csv"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
SUFFIXES = TEXT_SUFFIXES | TABLE_SUFFIXES | IMAGE_SUFFIXES | {".docx", ".pdf"}
MAX_BYTES = 50 * 1024 * 1024
OCR_READ_KEPT = 8  # OCR'd documents kept (their paragraphs: kilobytes), newest last
_OCR_READ: dict[tuple[str, str], ParsedDocument] = {}
MAX_LOW_CONFIDENCE_NOTES = 5  # low-confidence OCR lines quoted in a report; the rest are counted
_QUOTE_CHARS = 20  # characters of a line quoted in a report note


@dataclass
class DocumentStats:
    """What reading one document found: for the upload and build reports."""

    paragraphs: int = 0
    tables: int = 0
    table_rows: int = 0
    pages: int = 0  # pages of a PDF; 0 for a format without pages
    pages_ocr: int = 0  # pages (or images) read by OCR
    ocr_chars: int = 0
    ocr_seconds: float = 0.0
    low_confidence: int = 0  # OCR'd lines read with a score under rag.ocr.LOW_CONFIDENCE
    notes: list[str] = field(default_factory=list)  # what was skipped or doubtful, and why

    def summary(self) -> str:
        """One line: "12 paragraphs, 2 tables (14 rows), 3 pages (2 OCR'd, 1 low-confidence line)"."""
        parts = [_count_of(self.paragraphs, "paragraph")]
        if self.tables:
            parts.append(f"{_count_of(self.tables, 'table')} ({_count_of(self.table_rows, 'row')})")
        if self.pages or self.pages_ocr:
            ocr = f"{self.pages_ocr} OCR'd" if self.pages_ocr else ""
            if self.low_confidence:
                ocr += f", {_count_of(self.low_confidence, 'low-confidence line')}"
            pages = _count_of(self.pages, "page") if self.pages else "an image"
            parts.append(f"{pages} ({ocr})" if ocr else pages)
        return ", ".join(parts)

    def as_json(self) -> dict[str, Any]:
        """The counts, the notes and the summary line (what an index keeps and the API sends)."""
        return {**asdict(self), "ocr_seconds": round(self.ocr_seconds, 2), "summary": self.summary()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DocumentStats:
        """Stats written by as_json (a field it does not know is left out, a missing one is 0)."""
        known = {f.name for f in fields(cls)}
        stats = cls(**{k: v for k, v in data.items() if k in known and k != "notes"})
        stats.notes = [str(n) for n in data.get("notes", [])]
        return stats


def _count_of(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")


@dataclass
class ParsedDocument:
    """A document's paragraphs and what reading it found."""

    paragraphs: list[Paragraph]
    stats: DocumentStats


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- .docx


def lines_from_docx(data: bytes, name: str) -> tuple[str, list[Line]]:
    """The paragraphs and tables of a .docx body in order; a table of values becomes one table line (its
    caption the 题注/Caption paragraph just above it), a table that lays out prose a line per cell."""
    try:
        import docx
        from docx.table import Table as DocxTable
    except ImportError as exc:  # pragma: no cover - the ui extra installs it
        raise DocumentError(name, "reading .docx needs python-docx: pip install 'rag[ui]'") from exc
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except Exception as exc:
        raise DocumentError(name, f"not a readable .docx file ({exc})") from exc
    text_parts: list[str] = []
    out: list[Line] = []
    pos = 0

    def add(line: Line) -> None:
        nonlocal pos
        out.append(line)
        text_parts.append(line.text)
        pos += len(line.text) + 1

    for block in blocks:
        if isinstance(block, DocxTable):
            caption = ""
            if out and out[-1].table is None and _caption_style(out[-1].text, blocks, block):
                caption = out.pop().text
            table = _docx_table(block, caption)
            if table.is_data():
                add(Line(caption, pos, pos + len(caption), blank_before=True, table=table))
            else:
                for text in dict.fromkeys(c.text for row in table.grid for c in row if c.text):
                    add(Line(text, pos, pos + len(text), blank_before=True))
            continue
        body = block.text.strip()
        if body:
            style = (block.style.name if block.style is not None else "") or ""
            heading = style.lower().startswith(("heading", "title", "标题"))
            add(Line(body, pos, pos + len(body), heading=heading, blank_before=True))
    return "\n".join(text_parts), out


def _caption_style(text: str, blocks: list[Any], table: Any) -> bool:
    """Whether the paragraph just before table (whose text is text) is styled as a caption."""
    i = next(k for k, b in enumerate(blocks) if b is table)
    before = blocks[i - 1] if i else None
    style = getattr(getattr(before, "style", None), "name", "") or ""
    return (
        before is not None
        and getattr(before, "text", "").strip() == text
        and style.lower() in ("caption", "题注")
    )


def _docx_table(table: Any, caption: str) -> Table:
    """A docx table as a grid: python-docx repeats a merged cell over the positions it covers (across and
    down), so the same cell element means the same origin; rows marked to repeat as headers are the header."""
    origins: dict[int, tuple[int, int]] = {}
    grid: list[tuple[Cell, ...]] = []
    header = 0
    for i, row in enumerate(table.rows):
        cells: list[Cell] = [Cell("", (i, j)) for j in range(row.grid_cols_before)]
        for cell in row.cells:
            key = id(cell._tc)
            origin = origins.setdefault(key, (i, len(cells)))
            cells.append(Cell(cell_text(cell.text), origin))
        grid.append(tuple(cells))
        if header == i and row._tr.trPr is not None and row._tr.trPr.xpath("./w:tblHeader"):
            header += 1
    return Table(tuple(grid), caption=caption, header_rows=header or None)


# ---------------------------------------------------------------- images


def lines_from_image(data: bytes, name: str, on_page: PageProgress | None) -> tuple[list[Line], PageText]:
    """An image's text, OCR'd and laid out (reading order, paragraphs); no page numbers."""
    try:
        (text,) = list(ocr_pages(data, on_page=on_page))
    except OcrPending:
        raise
    except DocumentError as exc:
        raise DocumentError(name, exc.reason) from exc
    if not text.boxes:
        raise DocumentError(
            name, "OCR found no text in the image (a photo, or a blank scan?); nothing to index"
        )
    page = text.as_page()
    return page_lines(page, body_size([page])), text


# ---------------------------------------------------------------- entry points


def sniff_kind(data: bytes, suffix: str) -> str:
    """The format by content: 'pdf', 'docx', 'xlsx', 'png', 'jpg', 'html', 'md', 'csv' or 'txt'; raises
    DocumentError for a file whose content does not match its extension."""
    if data.startswith(b"%PDF"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = set(zf.namelist())
        except zipfile.BadZipFile:
            names = set()
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        raise DocumentError(suffix, "a ZIP archive that is neither a .docx document nor an .xlsx workbook")
    if suffix in (".pdf", ".docx", ".xlsx") or suffix in IMAGE_SUFFIXES:
        raise DocumentError(suffix, f"the content is not a {suffix} file")
    head = data[:2048].lower()
    if suffix in (".html", ".htm") or b"<html" in head or b"<!doctype html" in head:
        return "html"
    if suffix == ".csv":
        return "csv"
    return "md" if suffix in (".md", ".markdown") else "txt"


def parse_document(data: bytes, name: str, on_page: PageProgress | None = None) -> ParsedDocument:
    """Paragraphs of one document given its bytes and file name, and what was found; scanned pages and
    images are OCR'd, on_page(done, total) called after each. A document that needed OCR is kept for the
    next call with the same bytes and name (an upload's report, then its build), so it is OCR'd once."""
    key = (sha256_of(data), name)
    if key in _OCR_READ:
        kept = _OCR_READ[key]
        return ParsedDocument(list(kept.paragraphs), replace(kept.stats, notes=list(kept.stats.notes)))
    parsed = _parse(data, name, on_page)
    if parsed.stats.pages_ocr:
        _OCR_READ[key] = parsed
        while len(_OCR_READ) > OCR_READ_KEPT:
            _OCR_READ.pop(next(iter(_OCR_READ)))
    return parsed


def _parse(data: bytes, name: str, on_page: PageProgress | None) -> ParsedDocument:
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise DocumentError(
            name, f"unsupported file type {suffix or '(none)'}; use one of {sorted(SUFFIXES)}"
        )
    if len(data) > MAX_BYTES:
        raise DocumentError(name, f"larger than {MAX_BYTES // 2**20} MiB; split it into smaller files")
    try:
        kind = sniff_kind(data, suffix)
    except DocumentError as exc:
        raise DocumentError(name, exc.reason) from exc
    stats = DocumentStats()
    ocr: list[PageText] = []
    if kind == "pdf":
        reading = read_pdf(data, name, on_page)
        lines, ocr, stats.pages = reading.lines, reading.ocr, reading.pages
        stats.notes.extend(reading.skipped)
        if reading.furniture:
            stats.notes.append(f"{reading.furniture} running heads, footers and page numbers left out")
        if not lines:
            raise DocumentError(name, _no_text_in_pdf(reading.pages, len(ocr)))
    elif kind in ("png", "jpg"):
        lines, scan = lines_from_image(data, name, on_page)
        ocr = [scan]
    elif kind == "docx":
        _, lines = lines_from_docx(data, name)
    elif kind == "xlsx":
        lines = [Line(t.caption, 0, 0, blank_before=True, table=t) for t in tables_from_xlsx(data, name)]
    else:
        text = decode(data, name)
        if kind == "html":
            lines = lines_from_html(text)
        elif kind == "md":
            lines = lines_from_markdown(text)
        elif kind == "csv":
            lines = [Line("", 0, len(text), blank_before=True, table=table_from_csv(text, name))]
        else:
            lines = lines_from_text(text)
    paragraphs = paragraphs_from_lines(name, lines)
    if not paragraphs:
        raise DocumentError(name, "no paragraphs of text found")
    _count(stats, paragraphs, lines, ocr)
    return ParsedDocument(paragraphs, stats)


def _no_text_in_pdf(pages: int, scanned: int) -> str:
    if scanned:
        return f"OCR found no text on its {scanned} scanned page(s) of {pages}; nothing to index"
    return f"the PDF's {pages} page(s) hold no text; nothing to index"


def _count(stats: DocumentStats, paragraphs: list[Paragraph], lines: list[Line], ocr: list[PageText]) -> None:
    stats.paragraphs = len(paragraphs)
    stats.tables = len({p.table for p in paragraphs if p.table})
    stats.table_rows = len({(p.table, p.row) for p in paragraphs if p.table})
    empty = sum(1 for ln in lines if ln.table is not None) - stats.tables
    if empty > 0:
        stats.notes.append(f"{empty} table(s) without data rows left out")
    stats.pages_ocr = len(ocr)
    stats.ocr_chars = sum(t.chars for t in ocr)
    stats.ocr_seconds = sum(t.seconds for t in ocr)
    doubtful = [(t.page, b) for t in ocr for b in t.low_confidence]
    stats.low_confidence = len(doubtful)
    for page, box in doubtful[:MAX_LOW_CONFIDENCE_NOTES]:
        where = f"page {page}: " if page else ""
        stats.notes.append(
            f"{where}OCR is unsure of {box.text[:_QUOTE_CHARS]!r} (score {box.confidence:.2f} < {LOW_CONFIDENCE})"
        )
    if len(doubtful) > MAX_LOW_CONFIDENCE_NOTES:
        stats.notes.append(f"… and {len(doubtful) - MAX_LOW_CONFIDENCE_NOTES} more low-confidence OCR lines")


def paragraphs_from_bytes(data: bytes, name: str) -> list[Paragraph]:
    """Paragraphs of one document given its bytes and file name."""
    return parse_document(data, name).paragraphs


def read_document(path: str | Path) -> tuple[list[Paragraph], str]:
    """Paragraphs of the file at path and the sha256 of its bytes."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DocumentError(str(p), f"cannot be read ({exc.strerror or exc})") from exc
    return paragraphs_from_bytes(data, p.name), sha256_of(data)


def find_documents(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to index under the given files or folders, and (path, reason) for those left out."""
    found: list[Path] = []
    left_out: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(p).parts):
                    if child.suffix.lower() in SUFFIXES:
                        found.append(child)
                    else:
                        left_out.append((str(child), f"unsupported file type {child.suffix or '(none)'}"))
        elif p.is_file():
            found.append(p)
        else:
            left_out.append((str(p), "no such file or folder"))
    return found, left_out
