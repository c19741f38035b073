"""Positioned text → paragraphs in reading order, for pages: the words of a PDF's text layer and the boxes
OCR finds on a scan are both `Box`es on a page.

A page is read column by column: a gutter is an upright band of the page that almost no box crosses (only
titles across both columns do); the left column is read top to bottom, then the right one, each stretch
between full-width lines on its own. Boxes on one visual line are joined (Chinese has no spaces: none is
put between two Chinese characters); lines are joined into paragraphs until a paragraph break: a gap of a
blank line, a first-line indent, a line that stops short of the column's right edge, a change of type size.
Lines repeated at the top or bottom of most pages (running heads, footers) and bare page numbers are
dropped. A paragraph across a page break is joined by rag/paragraphs.py, which sees every page.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.paragraphs import Line
from rag.tables import WIDE_CHAR, Table

# A gutter: the central stretch of the page (this share of the text width on each side is left out) where
# at most CROSSING_SHARE of the lines cross a vertical line: titles over both columns, no body lines.
GUTTER_MARGIN = 0.25
CROSSING_SHARE = 0.15
COLUMN_GAP = 1.5  # ems between two pieces of one visual line that are in two columns (a justified space: <1)
MIN_COLUMN_LINES = 3  # lines on each side of a gutter: fewer is a stray label, not a column
SAME_LINE_OVERLAP = 0.5  # two boxes share a visual line when their heights overlap by half the lower one
# Paragraph breaks, in units of the line's height (type size): a blank line's gap (body text is set with
# 0.3-0.6 of a line between lines: reportlab's default leading and our scans measured 0.45-0.5), a
# first-line indent of Chinese typesetting (two characters; 1.5 allows for OCR's loose boxes), a line
# that stops this short of the right edge.
PARAGRAPH_GAP = 1.0
INDENT = 1.5
SHORT_LINE = 2.0
# Two boxes on a line farther apart than this share of the type size have a space between them (a space
# is a quarter to a third of an em); nearer, they are one word that OCR or the PDF cut in two (9 | 8.6亿元).
WORD_GAP = 0.2
SIZE_CHANGE = 0.15  # type size differing by this share from the line above starts a new block
EDGE_LINES = 3  # lines above and below that show where the column's edges run (a turned scan's slant)
SIZED_CHARS = 5  # OCR's size of a shorter line is too rough to compare (its box is padded more)
HEADING_SIZE = 1.15  # a block this much larger than the body text is a heading
# Running heads and footers: lines within this share of the page height from its top or bottom edge that
# recur (digits aside) on at least REPEATED_SHARE of the pages, two at least.
MARGIN_BAND = 0.1
REPEATED_SHARE = 0.5
_PAGE_NUMBER = re.compile(
    r"^(?:[-—–第]?\s*\d{1,4}\s*[-—–页頁]?|page\s*\d+(?:\s*of\s*\d+)?|\d+\s*/\s*\d+|第\s*\d+\s*页\s*共\s*\d+\s*页)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Box:
    """Text at a place on a page (top-left origin, any unit), or a table read there."""

    text: str
    x0: float
    top: float
    x1: float
    bottom: float
    size: float = 0.0  # type size; for OCR the box's height
    confidence: float = 0.0  # OCR's score, 0-1; 0.0 from a text layer
    table: Table | None = None

    @property
    def height(self) -> float:
        return self.size or (self.bottom - self.top)


@dataclass(frozen=True)
class PageBoxes:
    """The boxes of one page and its size."""

    page: int  # 1-based
    width: float
    height: float
    boxes: tuple[Box, ...]
    ocr: bool = False


@dataclass
class _Row:
    boxes: list[Box] = field(default_factory=list)

    @property
    def x0(self) -> float:
        return min(b.x0 for b in self.boxes)

    @property
    def x1(self) -> float:
        return max(b.x1 for b in self.boxes)

    @property
    def top(self) -> float:
        return min(b.top for b in self.boxes)

    @property
    def bottom(self) -> float:
        return max(b.bottom for b in self.boxes)

    @property
    def size(self) -> float:
        return statistics.median(b.height for b in self.boxes)

    @property
    def text(self) -> str:
        out = ""
        prev: Box | None = None
        for box in sorted(self.boxes, key=lambda b: b.x0):
            spaced = prev is not None and box.x0 - prev.x1 > WORD_GAP * box.height
            out = join_text(out, box.text, spaced or prev is None)
            prev = box
        return out

    @property
    def confidence(self) -> float:
        return min((b.confidence for b in self.boxes if b.confidence), default=0.0)


def join_text(before: str, after: str, spaced: bool = True) -> str:
    """Two pieces of a line or paragraph: no space next to a Chinese character, one between Latin words
    when there is room for one (spaced); a word hyphenated at a line end is joined again."""
    before, after = before.rstrip(), after.lstrip()
    if not before or not after:
        return before + after
    if WIDE_CHAR.match(before[-1]) or WIDE_CHAR.match(after[0]) or not spaced:
        return before + after
    if before.endswith("-") and before[-2:-1].isalpha() and after[0].islower():
        return before[:-1] + after
    return f"{before} {after}"


def is_page_number(text: str) -> bool:
    return bool(_PAGE_NUMBER.match(text.strip()))


def _furniture_key(text: str) -> str:
    return re.sub(r"\d+", "#", re.sub(r"\s+", "", text))


def drop_furniture(pages: Sequence[PageBoxes]) -> tuple[list[PageBoxes], int]:
    """Pages without their running heads, footers and page numbers; and how many lines that dropped."""
    seen: Counter[str] = Counter()
    for page in pages:
        seen.update({_furniture_key(r.text) for r in _margin_rows(page)})
    repeated = {k for k, n in seen.items() if n >= max(2, REPEATED_SHARE * len(pages))}
    out: list[PageBoxes] = []
    dropped = 0
    for page in pages:
        gone: set[int] = set()
        for row in _margin_rows(page):
            if is_page_number(row.text) or _furniture_key(row.text) in repeated:
                gone.update(id(b) for b in row.boxes)
                dropped += 1
        boxes = tuple(b for b in page.boxes if id(b) not in gone)
        out.append(PageBoxes(page.page, page.width, page.height, boxes, page.ocr))
    return out, dropped


def _margin_rows(page: PageBoxes) -> list[_Row]:
    band = MARGIN_BAND * page.height
    boxes = [b for b in page.boxes if b.table is None and (b.bottom <= band or b.top >= page.height - band)]
    return _rows(boxes)


def _rows(boxes: Sequence[Box]) -> list[_Row]:
    """Boxes grouped into visual lines, top to bottom (a slightly rotated scan's lines still group: boxes
    are compared with the line they would join, not with a fixed grid)."""
    rows: list[_Row] = []
    for box in sorted(boxes, key=lambda b: (b.top + b.bottom) / 2):
        for row in reversed(rows[-3:]):
            overlap = min(row.bottom, box.bottom) - max(row.top, box.top)
            lower = min(row.bottom - row.top, box.bottom - box.top)
            if lower > 0 and overlap >= SAME_LINE_OVERLAP * lower and not _overlaps_x(row, box):
                row.boxes.append(box)
                break
        else:
            rows.append(_Row([box]))
    return sorted(rows, key=lambda r: r.top)


def _overlaps_x(row: _Row, box: Box) -> bool:
    return any(
        min(b.x1, box.x1) - max(b.x0, box.x0) > 0.5 * min(b.x1 - b.x0, box.x1 - box.x0) for b in row.boxes
    )


def _gutter(boxes: Sequence[Box]) -> float | None:
    """The x of a gutter between two columns, or None for a page of one column. Lines are counted, not
    boxes: the words of one line of English cross any x but at the spaces between them."""
    lines = [
        piece for row in _rows([b for b in boxes if b.text and b.table is None]) for piece in _pieces(row)
    ]
    if len(lines) < 2 * MIN_COLUMN_LINES:
        return None
    left, right = min(r.x0 for r in lines), max(r.x1 for r in lines)
    steps = 200
    xs = [
        left + (right - left) * (GUTTER_MARGIN + (1 - 2 * GUTTER_MARGIN) * k / steps)
        for k in range(steps + 1)
    ]
    # the middle of the widest stretch that few enough lines cross (titles over both columns)
    runs: list[list[float]] = [[]]
    for x in xs:
        if sum(1 for r in lines if _crosses(r, x)) <= CROSSING_SHARE * len(lines):
            runs[-1].append(x)
        elif runs[-1]:
            runs.append([])
    widest = max(runs, key=lambda r: r[-1] - r[0] if r else -1.0)
    if not widest:
        return None
    x = (widest[0] + widest[-1]) / 2
    on_left = sum(1 for r in lines if r.x1 <= x)
    on_right = sum(1 for r in lines if r.x0 >= x)
    return x if min(on_left, on_right) >= MIN_COLUMN_LINES else None


def _pieces(row: _Row) -> list[_Row]:
    """A visual line cut where its boxes stand farther apart than a word space can stretch: the lines of
    two columns at one height are two lines."""
    pieces: list[_Row] = []
    for box in sorted(row.boxes, key=lambda b: b.x0):
        if pieces and box.x0 - pieces[-1].x1 <= COLUMN_GAP * box.height:
            pieces[-1].boxes.append(box)
        else:
            pieces.append(_Row([box]))
    return pieces


def _crosses(row: _Row, x: float) -> bool:
    return any(b.x0 < x < b.x1 for b in row.boxes)


def reading_order(boxes: Sequence[Box]) -> list[list[Box]]:
    """The page's boxes as flows read one after another: a stretch of the left column, the same stretch of
    the right column, then a full-width line (a title over both), and so on down the page."""
    gutter = _gutter(boxes)
    if gutter is None:
        return [list(boxes)]
    spanning = sorted((b for b in boxes if b.x0 < gutter < b.x1), key=lambda b: b.top)
    flows: list[list[Box]] = []
    upper = float("-inf")
    for lower in [b.top for b in spanning] + [float("inf")]:
        band = [b for b in boxes if not b.x0 < gutter < b.x1 and upper <= (b.top + b.bottom) / 2 < lower]
        flows.append([b for b in band if b.x1 <= gutter])
        flows.append([b for b in band if b.x1 > gutter])
        here = [b for b in spanning if b.top == lower]
        if here:
            flows.append(here)
        upper = lower
    return [f for f in flows if f]


@dataclass
class _Block:
    rows: list[_Row]
    indented: bool = False
    table: Table | None = None


def _blocks(flow: Sequence[Box]) -> list[_Block]:
    """One flow's rows grouped into paragraphs (and tables, each a block of its own)."""
    text_rows = _rows([b for b in flow if b.table is None])
    tables = [b for b in flow if b.table is not None]
    if not text_rows and not tables:
        return []
    blocks: list[_Block] = []
    prev: _Row | None = None
    for i, row in enumerate(text_rows):
        # the column's edges near this line: a slightly turned scan's edges slant
        near = text_rows[max(0, i - EDGE_LINES) : i + EDGE_LINES + 1]
        left, right = min(r.x0 for r in near), max(r.x1 for r in near)
        h = row.size
        indented = row.x0 - left >= INDENT * h
        new = (
            prev is None
            or row.top - prev.bottom > PARAGRAPH_GAP * h
            or indented
            or prev.x1 < right - SHORT_LINE * prev.size
            or (
                abs(row.size - prev.size) > SIZE_CHANGE * max(row.size, prev.size)
                and min(len(row.text), len(prev.text)) >= SIZED_CHARS
            )
        )
        if new:
            blocks.append(_Block([row], indented=indented))
        else:
            blocks[-1].rows.append(row)
        prev = row
    for box in tables:  # a table sits between the paragraphs above and below it
        at = sum(1 for b in blocks if b.rows[0].top < box.top)
        blocks.insert(at, _Block([_Row([box])], table=box.table))
    return blocks


def body_size(pages: Sequence[PageBoxes]) -> float:
    """The type size of the body text: the median size over the characters (OCR's sizes vary a little
    from line to line, so the most common size would be one line's)."""
    sizes = sorted(
        (b.height, len(b.text)) for page in pages for b in page.boxes if b.table is None and b.text
    )
    half = sum(n for _, n in sizes) / 2
    seen = 0
    for size, n in sizes:
        seen += n
        if seen >= half:
            return size
    return 0.0


def page_lines(page: PageBoxes, body: float) -> list[Line]:
    """The paragraphs of one page in reading order, as lines with the page number; blocks set larger than
    the body text are headings."""
    out: list[Line] = []
    for flow in reading_order(page.boxes):
        for block in _blocks(flow):
            if block.table is not None:
                out.append(
                    Line(block.table.caption, 0, 0, blank_before=True, page=page.page, table=block.table)
                )
                continue
            text = ""
            for row in block.rows:  # a line break in Chinese text is no space, even inside 9|8.6亿元
                text = join_text(text, row.text, spaced=not WIDE_CHAR.search(text))
            if not text:
                continue
            size = statistics.median(r.size for r in block.rows)
            confidence = min((r.confidence for r in block.rows if r.confidence), default=0.0)
            out.append(
                Line(
                    text,
                    0,
                    0,
                    heading=bool(body) and size >= HEADING_SIZE * body and len(block.rows) <= 2,
                    blank_before=True,
                    page=page.page,
                    indented=block.indented,
                    ocr_confidence=confidence,
                )
            )
    return out
