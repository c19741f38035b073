"""Lines → paragraphs: what every format reader produces (`Line`s, with the table a line may stand for)
grouped into `Paragraph`s; headings become the section and press-conference speaker lines the speaker of
what follows; page numbers and page furniture (QR prompts, registration numbers) are dropped; a paragraph
cut by a page break is joined again when the first part stops mid-sentence; each row of a table becomes a
paragraph of its own (rag/tables.py), headed by the table's caption or the section it stands under.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rag.tables import Table, row_texts
from rag.types import Paragraph


@dataclass(frozen=True)
class Line:
    """A source line (or a paragraph a layout reader already joined) with its character span, page and what
    the format says it is; a line that stands for a whole table carries it in `table`."""

    text: str
    start: int
    end: int
    heading: bool = False  # the format marks it as a heading (Markdown #, HTML h1-h6, docx Heading style)
    blank_before: bool = False
    page: int = 0  # 1-based page it starts on; 0 for a format without pages
    page_breaks: tuple[int, ...] = ()  # offsets in text where a new page begins
    table: Table | None = None
    ocr_confidence: float = 0.0  # the least sure OCR'd line in it (0.0: from a text layer)
    indented: bool = False  # its first line is indented (a layout reader saw a new paragraph start)


def lines_from_text(text: str) -> list[Line]:
    out: list[Line] = []
    pos = 0
    blank = False
    for raw in text.split("\n"):
        start, end = pos, pos + len(raw)
        pos = end + 1
        stripped = raw.strip()
        if not stripped:
            blank = True
            continue
        offset = raw.index(stripped[0])
        out.append(Line(stripped, start + offset, start + offset + len(stripped), blank_before=blank))
        blank = False
    return out


_PAGE_NUMBER = re.compile(r"^(?:[-—–第]?\s*\d{1,4}\s*[-—–页頁]?|page\s*\d+|\d+\s*/\s*\d+)$", re.IGNORECASE)
_FURNITURE = re.compile(
    r"(扫一扫|掃一掃|扫码|掃碼|二维码|二維碼|网安备|網安備|ICP备|ICP備|版权所有|版權所有|Copyright)", re.I
)
_HEADING_MARK = re.compile(
    r"^(?:[●■◆▲★○◎◇□▶]|[一二三四五六七八九十百]+、|[（(][一二三四五六七八九十]+[）)]|第[一二三四五六七八九十百\d]+[章节節部分篇条條])"
)
_SENTENCE_PUNCT = re.compile(r"[，,。；;！？!?]")
_TERMINAL = "。！？!?；;：:…”’」』)）】》\"'"
_OPENERS = "“‘「『(（【《●■◆▲★"


def _is_furniture(text: str) -> bool:
    return bool(_PAGE_NUMBER.match(text)) or bool(_FURNITURE.search(text))


def _is_speaker(text: str) -> bool:
    """A press-conference turn: 'role name:' alone on a line, or a short 'role:' label before text."""
    if not text.endswith((":", "：")) or len(text) > 40:
        return _inline_speaker(text) is not None
    return not _SENTENCE_PUNCT.search(text[:-1])


def _inline_speaker(text: str) -> str | None:
    m = re.match(r"^([^，,。:：；;！？!?]{2,8})[:：](\S.{0,40})$", text)
    if m and not _SENTENCE_PUNCT.search(text):
        return m.group(1)
    return None


def _is_heading(line: Line) -> bool:
    text = line.text
    if line.heading:
        return True
    if len(text) > 40 or text.endswith(("。", "！", "？", "!", "?", "；", ";", ":", "：")):
        return False
    if _HEADING_MARK.match(text):
        return "。" not in text
    # A short line with no punctuation at all is a title line (press-release layout).
    return len(text) <= 30 and not _SENTENCE_PUNCT.search(text) and ":" not in text and "：" not in text


def _continues(prev: str, nxt: Line) -> bool:
    """Whether nxt carries on prev across a page break: prev stops mid-sentence, nxt is no new block."""
    if not prev or prev[-1] in _TERMINAL:
        return False
    if not _SENTENCE_PUNCT.search(prev) and len(prev) < 20:
        return False
    first = nxt.text[0]
    return first not in _OPENERS and not _HEADING_MARK.match(nxt.text) and not _is_speaker(nxt.text)


def _drop_trailing_furniture(lines: list[Line]) -> list[Line]:
    """Page furniture at the end (QR prompts, registration numbers and the short site names around them)."""
    tail = len(lines)
    for i in range(len(lines) - 1, max(-1, len(lines) - 12), -1):
        if lines[i].table is None and _FURNITURE.search(lines[i].text):
            tail = i
    kept = lines[:tail]
    for line in lines[tail:]:
        short = len(line.text) <= 20 and not _SENTENCE_PUNCT.search(line.text)
        if line.table is not None or not (_is_furniture(line.text) or short):
            kept.append(line)
    return kept


def _joined(prev: Line, line: Line) -> Line:
    """prev carried on by line (a page-break join), with the page breaks between and inside them."""
    breaks = prev.page_breaks + ((len(prev.text),) if line.page != prev.page else ())
    breaks += tuple(len(prev.text) + b for b in line.page_breaks)
    confidence = min((c for c in (prev.ocr_confidence, line.ocr_confidence) if c), default=0.0)
    return Line(
        prev.text + line.text,
        prev.start,
        line.end,
        blank_before=prev.blank_before,
        page=prev.page,
        page_breaks=breaks,
        ocr_confidence=confidence,
    )


def _may_join(prev: Line, line: Line) -> bool:
    """Whether line may carry prev on: both text, neither marked a heading, and across a page break when
    the format has pages (a layout reader has already joined the lines of one page)."""
    if prev.table is not None or line.table is not None or line.heading or prev.heading:
        return False
    if not line.blank_before or line.indented:
        return False
    return not (prev.page or line.page) or line.page != prev.page


def paragraphs_from_lines(doc: str, lines: Iterable[Line]) -> list[Paragraph]:
    """Group lines into paragraphs; headings become sections, speaker lines speakers, table rows paragraphs."""
    body = _drop_trailing_furniture(
        [ln for ln in lines if ln.table is not None or not _PAGE_NUMBER.match(ln.text)]
    )
    body = [ln for ln in body if ln.table is not None or not _FURNITURE.search(ln.text)]
    # Page-break joins: a line that stops mid-sentence and the next line that carries it on.
    merged: list[Line] = []
    for line in body:
        if merged and _may_join(merged[-1], line):
            prev = merged[-1]
            if not _is_heading(prev) and not _is_speaker(prev.text) and _continues(prev.text, line):
                merged[-1] = _joined(prev, line)
                continue
        merged.append(line)

    paragraphs: list[Paragraph] = []
    section = ""
    speaker = ""
    heading_run: list[str] = []
    full_labels: dict[str, str] = {}  # "主持人" -> "主持人:中共…副部長 王瑤", once a line has named them
    tables = 0
    for line in merged:
        text = line.text
        if line.table is not None:
            rows = row_texts(line.table, context=line.table.caption or section)
            tables += 1 if rows else 0
            for row in rows:
                paragraphs.append(
                    _paragraph(doc, len(paragraphs) + 1, row.text, section, speaker, line, tables, row.row)
                )
            heading_run = []
            continue
        if _is_speaker(text) and not line.heading:
            inline = _inline_speaker(text)
            if inline:
                speaker = full_labels[inline] = text
            else:
                label = text[:-1].strip()
                speaker = full_labels.get(label, label)
            section = ""
            heading_run = []
            if not inline:
                continue
        elif _is_heading(line):
            heading_run.append(text)
            section = " ".join(heading_run)
            continue
        heading_run = []
        paragraphs.append(_paragraph(doc, len(paragraphs) + 1, text, section, speaker, line))
    text_lines = [ln for ln in merged if ln.table is None]
    if not paragraphs and text_lines:  # a document of headings only still has its text
        paragraphs = [_paragraph(doc, i + 1, ln.text, "", "", ln) for i, ln in enumerate(text_lines)]
    return paragraphs


def _paragraph(
    doc: str, n: int, text: str, section: str, speaker: str, line: Line, table: int = 0, row: int = 0
) -> Paragraph:
    return Paragraph(
        doc=doc,
        paragraph=n,
        text=text,
        section=section,
        speaker=speaker,
        start=line.start,
        end=line.end,
        page=line.page,
        page_breaks=line.page_breaks if not table else (),
        table=table,
        row=row,
        ocr_confidence=line.ocr_confidence,
    )
