"""Tables → self-contained rows: each data row becomes one text that carries the table's caption (or the
heading above it), its row label and the column headers of its cells ("2024年主要指标 · 招商引资到位资金 ·
2024年：7.3亿元"), so retrieval and the answerer see a whole fact in one paragraph.

A `Table` is a grid in which a merged cell repeats over every position it covers, with the same `origin`;
readers of each format (.docx, HTML, Markdown, PDF, .xlsx, .csv) build that grid, and `row_texts` does the
rest: header rows (several when a header cell spans columns), the row-label column, wide rows split.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.errors import DocumentError

# A row paragraph stays about as long as the seeds' 90th-percentile paragraph (277 characters over seeds/),
# inside one embedded window (rag.store: 600) and within reach of the answerer's 80-character quote.
MAX_ROW_CHARS = 300
# A cell this long is prose laid out in a table (pages built from tables), not a value under a header.
MAX_CELL_CHARS = 200
MAX_SHEET_ROWS = 20_000  # rows read from one sheet or CSV file: more is a database dump, not a document
MAX_HEADER_ROWS = 3
MAX_NAME_CHARS = 10  # a column name is short: 面积（平方公里）, 播种面积（万亩） are 8  # header rows recognised above the data: deeper headers are rare in reports

# A figure: a number with at most a short unit after it (7.3亿元, 5.2%, 126公里, 20km), not a label that
# holds a digit (5G基站, 第3季度, 同比增长5%).
_VALUE = re.compile(r"^[约近超逾<>≤≥±+\-−]*\d[\d,.．\-~至]*\s*(?:[%‰]|[A-Za-z/²³]{1,4}|[^\dA-Za-z\s]{0,4})$")
# Column names that hold digits: a year, month or quarter (2024年, 2024年上半年, 1-6月, 一季度, 2023).
_YEAR_OR_PERIOD = re.compile(
    r"^(?:(?:19|20)\d\d(?:年度?)?)?(?:年?\d{1,2}(?:[-~至]\d{1,2})?月份?|年?[上下]半年|年?第?[一二三四1-4]季度)?$"
)
WIDE_CHAR = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")  # CJK, full-width forms
CELL_JOIN = "，"  # between the cells of one row: a clause break, not a sentence end (one fact, one sentence)
LABEL_MARK = "："
CONTEXT_MARK = " · "


@dataclass(frozen=True)
class Cell:
    """One grid position: the text of the cell that covers it and where that cell starts (row, column)."""

    text: str
    origin: tuple[int, int]


@dataclass(frozen=True)
class Table:
    """A table as a format gives it: its grid, its caption, and its header rows when the format marks them
    (<th>/<thead>, a repeated docx header row); None leaves them to be recognised."""

    grid: tuple[tuple[Cell, ...], ...]
    caption: str = ""
    header_rows: int | None = None

    @property
    def columns(self) -> int:
        return max((len(r) for r in self.grid), default=0)

    def is_data(self) -> bool:
        """A table of values (two rows and two columns or more, no cell holding prose), not text laid out
        in a grid (a page's layout, a row of links)."""
        cells = [c.text for row in self.grid for c in row]
        rows = sum(1 for row in self.grid if any(c.text for c in row))
        return self.columns >= 2 and rows >= 2 and all(len(t) <= MAX_CELL_CHARS for t in cells)

    def text(self) -> str:
        """The cells as plain lines, one per row: how a table that holds prose is read."""
        return "\n".join(_row_plain(row) for row in self.grid)


@dataclass(frozen=True)
class RowText:
    """One paragraph of a table: data row number (1-based) and its self-contained text."""

    row: int
    text: str


def cell_text(text: str) -> str:
    """Cell text on one line: whitespace collapsed, none kept between two Chinese characters."""

    def space(m: re.Match[str]) -> str:
        before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
        return "" if WIDE_CHAR.match(before) and WIDE_CHAR.match(after) else " "

    return re.sub(r"\s+", space, text).strip()


def grid_from_rows(rows: Sequence[Sequence[str | None]]) -> tuple[tuple[Cell, ...], ...]:
    """A grid from rows of cell texts where None marks a position covered by the cell to its left (a
    horizontal merge, as a CSV exported from merged cells leaves it blank) — or by the one above it when
    nothing stands to its left."""
    width = max((len(r) for r in rows), default=0)
    grid: list[list[Cell]] = []
    for i, row in enumerate(rows):
        out: list[Cell] = []
        for j in range(width):
            value = row[j] if j < len(row) else ""
            if value is None:
                if out:
                    out.append(out[-1])
                elif grid:
                    out.append(grid[-1][j])
                else:
                    out.append(Cell("", (i, j)))
            else:
                out.append(Cell(cell_text(value), (i, j)))
        grid.append(out)
    return tuple(tuple(r) for r in grid)


def grid_from_spans(rows: Sequence[Sequence[tuple[str, int, int]]]) -> tuple[tuple[Cell, ...], ...]:
    """A grid from rows of (text, rowspan, colspan) as HTML gives them: a spanning cell fills the positions
    it covers, and the cells of later rows flow around them."""
    taken: dict[tuple[int, int], Cell] = {}
    width = 0
    for i, row in enumerate(rows):
        j = 0
        for text, rowspan, colspan in row:
            while (i, j) in taken:
                j += 1
            cell = Cell(cell_text(text), (i, j))
            for di in range(max(1, rowspan)):
                for dj in range(max(1, colspan)):
                    taken.setdefault((i + di, j + dj), cell)
            j += max(1, colspan)
        width = max([width] + [c + 1 for (r, c) in taken if r == i])
    height = len(rows)
    return tuple(tuple(taken.get((i, j), Cell("", (i, j))) for j in range(width)) for i in range(height))


def is_value(text: str) -> bool:
    """A cell that reads as a figure rather than a label: it holds a digit and is not a year or period
    (2024年, 2024年上半年 head columns; 7.3亿元, 12, 5.2% are values)."""
    compact = text.replace(" ", "")
    return bool(_VALUE.match(compact)) and not _YEAR_OR_PERIOD.match(compact)


def _row_plain(row: Sequence[Cell]) -> str:
    return " ".join(_distinct(row))


def _distinct(row: Sequence[Cell]) -> list[str]:
    """The texts of a row, a merged cell once."""
    out: list[str] = []
    seen: set[tuple[int, int]] = set()
    for cell in row:
        if cell.origin not in seen and cell.text:
            out.append(cell.text)
        seen.add(cell.origin)
    return out


def _trimmed(grid: tuple[tuple[Cell, ...], ...]) -> list[list[Cell]]:
    """Rows and columns with some text only."""
    rows = [list(r) for r in grid if any(c.text for c in r)]
    if not rows:
        return []
    width = max(len(r) for r in rows)
    rows = [r + [Cell("", (-1, j)) for j in range(len(r), width)] for r in rows]
    keep = [j for j in range(width) if any(r[j].text for r in rows)]
    return [[r[j] for j in keep] for r in rows]


def header_rows(rows: Sequence[Sequence[Cell]], known: int | None = None) -> int:
    """How many rows at the top are headers.

    The first row is a header unless it holds a value (a figure) or the table is two columns of label and
    value; the next rows are headers too while they hold no value and hang from the one above: it has a
    cell spanning columns (or a blank one, a CSV's merged cell) or one of their cells is merged down from it.
    """
    if known is not None:
        return min(known, len(rows) - 1)
    if len(rows) < 2 or any(is_value(c.text) for c in rows[0]):
        return 0
    if len(rows[0]) == 2 and _key_value(rows):
        return 0
    count = 1
    while count < min(len(rows) - 1, MAX_HEADER_ROWS):
        above, row = rows[count - 1], rows[count]
        if any(is_value(c.text) for c in row):
            break
        spans = any(a.origin == b.origin for a, b in zip(above, above[1:], strict=False))
        blank = any(not c.text for c in above[1:])
        merged_down = any(a.origin == b.origin for a, b in zip(above, row, strict=False))
        if not (spans or blank or merged_down):
            break
        count += 1
    return count


def _key_value(rows: Sequence[Sequence[Cell]]) -> bool:
    """Two columns of label and value with no header row: the first row's second cell is a figure or
    longer than a column name."""
    first = rows[0][1].text
    return is_value(first) or len(first) > MAX_NAME_CHARS


def column_labels(rows: Sequence[Sequence[Cell]], count: int) -> list[str]:
    """Each column's header: its header cells top to bottom, a cell merged over several rows once, a blank
    upper cell taking the text to its left (a merged cell as CSV leaves it)."""
    if not count:
        return [""] * (len(rows[0]) if rows else 0)
    header = [[c.text for c in r] for r in rows[:count]]
    for r in range(count - 1):  # the last header row names single columns: no filling there
        for j in range(1, len(header[r])):
            if not header[r][j]:
                header[r][j] = header[r][j - 1]
    labels: list[str] = []
    for j in range(len(rows[0])):
        parts: list[str] = []
        for r in range(count):
            text = header[r][j]
            if text and (not parts or parts[-1] != text):
                parts.append(text)
        labels.append(_joined(parts))
    return labels


def _joined(parts: Sequence[str]) -> str:
    """Header parts as one label: 2024年 + 上半年 → 2024年上半年; a space between Latin words."""
    out = ""
    for part in parts:
        if out and not (WIDE_CHAR.match(out[-1]) or WIDE_CHAR.match(part[0])):
            out += " "
        out += part
    return out


def _label_column(rows: Sequence[Sequence[Cell]], count: int) -> bool:
    """The first column names each row (指标, 县名...) when most of its data cells are not figures."""
    data = [r[0].text for r in rows[count:] if r[0].text]
    return len(rows[0]) >= 2 and bool(data) and sum(not is_value(t) for t in data) * 2 > len(data)


def row_texts(table: Table, context: str = "") -> list[RowText]:
    """The data rows of a table as self-contained texts (see the module docstring); a row longer than
    MAX_ROW_CHARS is cut between cells into several texts, each with the context and the row label."""
    rows = _trimmed(table.grid)
    if not rows:
        return []
    count = header_rows(rows, table.header_rows)
    labels = column_labels(rows, count)
    label_column = _label_column(rows, count)
    out: list[RowText] = []
    for n, row in enumerate(rows[count:], start=1):
        lead = row[0].text if label_column else ""
        parts: list[str] = []
        seen: set[tuple[int, int]] = {row[0].origin} if label_column else set()
        for j in range(1 if label_column else 0, len(row)):
            cell = row[j]
            if cell.origin in seen or not cell.text:
                seen.add(cell.origin)
                continue
            seen.add(cell.origin)
            label = labels[j] if count else ""
            parts.append(f"{label}{LABEL_MARK}{cell.text}" if label and label != cell.text else cell.text)
        if not count and len(parts) == 1 and lead:  # a label-value pair: 项目名称：某工程
            parts, lead = [f"{lead}{LABEL_MARK}{parts[0]}"], ""
        if not parts and not lead:
            continue
        prefix = CONTEXT_MARK.join(x for x in (context, lead) if x)
        for chunk in _chunks(parts, MAX_ROW_CHARS - len(prefix) - len(CONTEXT_MARK)):
            body = CELL_JOIN.join(chunk)
            out.append(RowText(n, CONTEXT_MARK.join(x for x in (prefix, body) if x)))
    return out


def _chunks(parts: list[str], limit: int) -> list[list[str]]:
    """Consecutive parts grouped so each group's joined text stays within limit (a longer part alone)."""
    if not parts:
        return [[]]
    groups: list[list[str]] = [[]]
    size = 0
    for part in parts:
        if groups[-1] and size + len(CELL_JOIN) + len(part) > limit:
            groups.append([])
            size = 0
        size += (len(CELL_JOIN) if groups[-1] else 0) + len(part)
        groups[-1].append(part)
    return groups


# ---------------------------------------------------------------- spreadsheets


def _title_row(grid: tuple[tuple[Cell, ...], ...]) -> tuple[str, tuple[tuple[Cell, ...], ...]]:
    """A first row holding one text over a wider table is its title: (title, the rest)."""
    rows = _trimmed(grid)
    if (
        len(rows) >= 2
        and len(rows[0]) >= 2
        and len(_distinct(rows[0])) == 1
        and not is_value(rows[0][0].text)
    ):
        title = _distinct(rows[0])[0]
        return title, tuple(tuple(r) for r in rows[1:])
    return "", tuple(tuple(r) for r in rows)


def tables_from_xlsx(data: bytes, name: str) -> list[Table]:
    """One table per sheet with text; its caption is a title row over the table, else the sheet's name."""
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - the ui extra installs it
        raise DocumentError(name, "reading .xlsx needs openpyxl: pip install 'rag[ui]'") from exc
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), data_only=True)  # data_only: formulas' saved values
    except Exception as exc:
        raise DocumentError(name, f"not a readable .xlsx workbook ({exc})") from exc
    tables: list[Table] = []
    for sheet in book.worksheets:
        origin: dict[tuple[int, int], tuple[int, int]] = {}
        for merged in sheet.merged_cells.ranges:
            for r in range(merged.min_row, merged.max_row + 1):
                for c in range(merged.min_col, merged.max_col + 1):
                    origin[(r, c)] = (merged.min_row, merged.min_col)
        values: dict[tuple[int, int], str] = {}
        for r, row in enumerate(sheet.iter_rows(max_row=MAX_SHEET_ROWS, values_only=True), start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    values[(r, c)] = _cell_value(value)
        if not values:
            continue
        height = max(r for r, _ in values)
        width = max(c for _, c in values)
        grid = tuple(
            tuple(
                Cell(cell_text(values.get(origin.get((r, c), (r, c)), "")), origin.get((r, c), (r, c)))
                for c in range(1, width + 1)
            )
            for r in range(1, height + 1)
        )
        title, grid = _title_row(grid)
        tables.append(Table(grid, caption=title or sheet.title))
    return tables


def _cell_value(value: object) -> str:
    """A spreadsheet value as shown: 7.3 not 7.300000000000001, 12 not 12.0, a date without its time."""
    if isinstance(value, float):
        return f"{value:.10g}"
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return str(text).removesuffix("T00:00:00")
    return str(value)


def table_from_csv(text: str, name: str) -> Table:
    """The table of a CSV file (comma, tab or semicolon separated); its caption is a title row, else the
    file's name without its extension."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;，")
    except csv.Error:
        dialect = csv.excel
    rows: list[list[str | None]] = []
    for i, record in enumerate(csv.reader(io.StringIO(text), dialect)):
        if i >= MAX_SHEET_ROWS:
            break
        rows.append([cell if cell.strip() or j == 0 else None for j, cell in enumerate(record)])
    # A blank cell stands for a merge only in header rows; in data it is an empty value.
    grid = grid_from_rows(rows[:MAX_HEADER_ROWS])
    data = [
        tuple(Cell(cell_text(c or ""), (i, j)) for j, c in enumerate(row))
        for i, row in enumerate(rows[MAX_HEADER_ROWS:], start=MAX_HEADER_ROWS)
    ]
    title, body = _title_row(tuple(grid) + tuple(data))
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return Table(body, caption=title or stem)
