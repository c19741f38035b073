"""Markup → lines: Markdown and HTML, their headings marked and their tables read as `Table`s.

HTML lines follow block and inline elements (p, div, li, td, h1-h6 and <br> end a line; b, strong, a, span
join it); a table of values becomes one table line (rag/tables.py makes a paragraph of each row), a table
that lays out prose is read as lines. Markdown pipe tables become table lines too.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from bs4.builder import HTMLTreeBuilder
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

from rag.paragraphs import Line, lines_from_text
from rag.tables import WIDE_CHAR, Table, grid_from_rows, grid_from_spans

_MD_HEADING = re.compile(r"^#{1,6}\s+")
_MD_INLINE = re.compile(r"(\*\*|__|`|~~)|!?\[([^\]]*)\]\([^)]*\)")
_MD_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?$")
_MD_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _md_inline(text: str) -> str:
    return _MD_INLINE.sub(lambda m: m.group(2) or "", text).strip()


def _md_cells(text: str) -> list[str]:
    body = text.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [_md_inline(c.replace("\\|", "|")) for c in _MD_CELL_SPLIT.split(body)]


def lines_from_markdown(text: str) -> list[Line]:
    """Lines of a Markdown document: # headings marked, list and quote marks and inline markup dropped, a
    pipe table (a header row over a |---| rule) as one table line."""
    out: list[Line] = []
    lines = lines_from_text(text)
    i = 0
    while i < len(lines):
        line = lines[i]
        if "|" in line.text and i + 1 < len(lines) and _MD_TABLE_RULE.match(lines[i + 1].text):
            rows = [_md_cells(line.text)]
            j = i + 2
            while j < len(lines) and "|" in lines[j].text and not lines[j].blank_before:
                rows.append(_md_cells(lines[j].text))
                j += 1
            table = Table(grid_from_rows(rows), header_rows=1)
            out.append(Line("", line.start, lines[j - 1].end, blank_before=True, table=table))
            i = j
            continue
        i += 1
        body = line.text
        heading = bool(_MD_HEADING.match(body))
        body = _MD_HEADING.sub("", body)
        body = re.sub(r"^(?:[-*+]\s+|>\s*)", "", body)
        body = _md_inline(body)
        if body and not re.fullmatch(r"[-*_=|: ]{3,}", body):
            out.append(Line(body, line.start, line.end, heading=heading, blank_before=line.blank_before))
    return out


# Block-level elements end a line; everything else (b, strong, a, span, em, font...) is inline and its text
# joins the line in place. Beautiful Soup's list of the standard's block elements, and the table parts.
_HTML_BLOCKS = frozenset(HTMLTreeBuilder.DEFAULT_BLOCK_ELEMENTS) | {
    "body",
    "caption",
    "html",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
}
_HTML_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_DROPPED = ("script", "style", "noscript", "head", "nav", "footer", "template")
_SOURCE_WINDOW = 1 << 16  # how far past the previous text a text is looked for to give its span (markup)
MAX_SPAN = 100  # a rowspan or colspan beyond this is a mistake in the page (colspan="9999"), not a layout
_SPAN_KEY = 16  # characters of a text looked for in the source: enough to place it among the markup
_ENTITY_CHARS = re.compile("[&<>\"'\xa0]")  # characters the source may hold as entities (&amp; &nbsp;)


def _html_whitespace(text: str) -> str:
    """Whitespace collapsed as a browser shows it: one space, none for a line break between two Chinese
    characters (a source line break inside a Chinese sentence is no space)."""

    def space(m: re.Match[str]) -> str:
        before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
        joined = "\n" in m.group() and WIDE_CHAR.match(before) and WIDE_CHAR.match(after)
        return "" if joined else " "

    return re.sub(r"\s+", space, text).strip()


class _HtmlLines:
    """Lines of an HTML document being built: one per block element (and per <br>), with the text of its
    inline children joined in place, and its span in the source."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[Line] = []
        self.parts: list[str] = []
        self.span: tuple[int, int] | None = None
        self.heading = False
        self.blank_before = True
        self.cursor = 0

    def add(self, text: str, heading: bool) -> None:
        key = _ENTITY_CHARS.split(text.strip(), maxsplit=1)[0][:_SPAN_KEY]
        if key:
            found = self.source.find(key, self.cursor, self.cursor + _SOURCE_WINDOW)
            if found >= 0:
                end = found + len(text.strip())
                self.span = (self.span[0] if self.span else found, end)
                self.cursor = found + len(key)
            self.heading = self.heading or heading
        self.parts.append(text)

    def add_table(self, table: Table, first: str, last: str) -> None:
        """A table line spanning the source from its first cell's text to its last one's."""
        self.end_line(blank_after=True)
        start = end = self.cursor
        for i, text in enumerate((first, last)):
            key = _ENTITY_CHARS.split(text, maxsplit=1)[0][:_SPAN_KEY]
            found = self.source.find(key, self.cursor, self.cursor + _SOURCE_WINDOW) if key else -1
            if found >= 0:
                start = found if i == 0 else start
                end = found + len(key)
                self.cursor = end
        self.lines.append(Line(table.caption, start, max(start, end), blank_before=True, table=table))
        self.blank_before = True

    def end_line(self, blank_after: bool) -> None:
        body = _html_whitespace("".join(self.parts))
        if body:
            start, end = self.span or (self.cursor, self.cursor)
            self.lines.append(
                Line(body, start, max(end, start), heading=self.heading, blank_before=self.blank_before)
            )
            self.blank_before = False
        self.blank_before = self.blank_before or blank_after
        self.parts, self.span, self.heading = [], None, False


def lines_from_html(text: str) -> list[Line]:
    """Lines of an HTML document: block elements (p, div, li, td, h1-h6...) and <br> end a line, inline
    elements (b, strong, a, span...) do not; headings are marked, <pre> keeps its line breaks."""
    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(_HTML_DROPPED):
        tag.decompose()
    lines = _HtmlLines(text)
    headings = pre = 0  # how many heading and <pre> elements the walk is inside
    stack: list[tuple[PageElement, bool]] = [(soup, False)]  # (node, leaving it): no recursion limit
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, Tag):
            name = node.name
            if name == "br":
                lines.end_line(blank_after=False)
                continue
            if name == "table" and not leaving:
                table = _html_table(node)
                if table is not None:
                    cells = [c.text for row in table.grid for c in row if c.text]
                    lines.add_table(table, cells[0], cells[-1])
                    continue
            if name in _HTML_BLOCKS:
                lines.end_line(blank_after=True)
            step = -1 if leaving else 1
            headings += step if name in _HTML_HEADINGS else 0
            pre += step if name == "pre" else 0
            if not leaving:
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(node.contents))
        elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):  # no comments
            for i, piece in enumerate(node.split("\n") if pre else [str(node)]):
                if i:
                    lines.end_line(blank_after=False)
                lines.add(piece, heading=headings > 0)
    lines.end_line(blank_after=True)
    return lines.lines


def _html_table(node: Tag) -> Table | None:
    """A table of values as a Table (rowspan and colspan expanded, <thead>/<th> rows as its header, its
    <caption>); None for a table that lays out prose or other tables, which is read as lines."""
    if node.find("table") is not None:
        return None
    rows: list[list[tuple[str, int, int]]] = []
    header_rows = 0
    header_done = False
    for tr in node.find_all("tr"):
        cells = tr.find_all(["td", "th"], recursive=False)
        if not cells:
            continue
        heads = (tr.parent is not None and tr.parent.name == "thead") or all(c.name == "th" for c in cells)
        if heads and not header_done:
            header_rows += 1
        else:
            header_done = True
        rows.append([(c.get_text(), _span(c, "rowspan"), _span(c, "colspan")) for c in cells])
    caption = node.find("caption")
    table = Table(
        grid_from_spans(rows),
        caption=_html_whitespace(caption.get_text()) if caption is not None else "",
        header_rows=header_rows or None,
    )
    has_text = any(c.text for row in table.grid for c in row)
    return table if has_text and table.is_data() else None


def _span(cell: Tag, attribute: str) -> int:
    """A cell's rowspan or colspan: 1 when absent or not a number; at most MAX_SPAN."""
    value = cell.get(attribute)
    try:
        return max(1, min(int(str(value)), MAX_SPAN))
    except ValueError:
        return 1
