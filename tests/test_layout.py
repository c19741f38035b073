"""Reading order and paragraphs from positioned text (pure: boxes made by hand, as OCR or a PDF gives them)."""

from __future__ import annotations

import pytest

from rag.layout import Box, PageBoxes, drop_furniture, join_text, page_lines, reading_order
from rag.paragraphs import paragraphs_from_lines

SIZE = 20.0


def row(text: str, x0: float, top: float, width: float | None = None, size: float = SIZE) -> Box:
    return Box(text, x0, top, x0 + (width if width is not None else len(text) * size), top + size, size=size)


def two_columns(skew: float = 0.0) -> list[Box]:
    """A title over two columns of three lines each; skew shifts each box down by skew per unit of x, as a
    slightly turned scan does, so the right column's lines sit between the left column's."""
    boxes = [row("两栏标题", 340, 20, size=30)]  # centred over both columns
    for i, text in enumerate(["左一行左一行左一行左一行", "左二行左二行左二行左二行", "左三行。"]):
        boxes.append(row(text, 100 + (40 if i == 0 else 0), 100 + 30 * i))
    for i, text in enumerate(["右一行右一行右一行右一行", "右二行右二行右二行右二行", "右三行。"]):
        boxes.append(row(text, 500 + (40 if i == 0 else 0), 100 + 30 * i - 600 * skew))
    return boxes


@pytest.mark.parametrize("skew", [0.0, 0.025])  # 0.025: about 1.5°
def test_two_columns_are_read_left_then_right_under_a_title(skew):
    flows = reading_order(two_columns(skew))
    assert [[b.text[:2] for b in flow] for flow in flows] == [
        ["两栏"],
        ["左一", "左二", "左三"],
        ["右一", "右二", "右三"],
    ]
    lines = page_lines(PageBoxes(1, 800, 1000, tuple(two_columns(skew))), body=SIZE)
    assert [(ln.text, ln.heading) for ln in lines] == [
        ("两栏标题", True),  # set larger than the body
        ("左一行左一行左一行左一行左二行左二行左二行左二行左三行。", False),
        ("右一行右一行右一行右一行右二行右二行右二行右二行右三行。", False),
    ]


def test_one_column_is_not_split_by_a_short_line():
    boxes = [row("第一行第一行第一行第一行第一行第一行", 100, 100 + 30 * i) for i in range(5)]
    boxes.append(row("短行。", 100, 250))
    assert len(reading_order(boxes)) == 1


@pytest.mark.parametrize(
    ("second", "joined"),
    [
        (row("接着上一行的文字接着上一行的文字", 100, 130), True),  # same paragraph
        (row("首行缩进两个字的新段落开始了", 140, 130), False),  # first-line indent
        (row("隔了一个空行的新段落开始了吧", 100, 160), False),  # a blank line's gap
    ],
)
def test_paragraph_breaks(second, joined):
    first = row("第一段的第一行文字第一段的第一行", 100, 100)
    third = row("第一段的第三行文字第一段的第三行", 100, second.top + 30)
    lines = page_lines(PageBoxes(1, 800, 1000, (first, second, third)), body=SIZE)
    assert (lines[0].text.startswith(first.text + second.text)) is joined


def test_a_short_line_ends_its_paragraph():
    boxes = (
        row("第一段第一行第一段第一行", 100, 100),
        row("完。", 100, 130),
        row("第二段第一行第二段第一行", 100, 160),
    )
    assert [ln.text for ln in page_lines(PageBoxes(1, 800, 1000, boxes), body=SIZE)] == [
        "第一段第一行第一段第一行完。",
        "第二段第一行第二段第一行",
    ]


def test_running_heads_and_page_numbers_are_dropped_across_pages():
    pages = [
        PageBoxes(
            n,
            800,
            1000,
            (
                row("某某县人民政府工作报告", 100, 20),
                row(f"第{n}页正文第{n}页正文。", 100, 300),
                row(f"- {n} -", 380, 960),
            ),
        )
        for n in (1, 2, 3)
    ]
    kept, dropped = drop_furniture(pages)
    assert dropped == 6
    assert [[b.text for b in p.boxes] for p in kept] == [
        ["第1页正文第1页正文。"],
        ["第2页正文第2页正文。"],
        ["第3页正文第3页正文。"],
    ]


def test_a_paragraph_across_pages_is_joined_with_its_page_break():
    page1 = PageBoxes(1, 800, 1000, (row("全县新签约项目八十六个，其中亿元以上项目二十三", 100, 900),))
    page2 = PageBoxes(
        2, 800, 1000, (row("个，新开工项目四十一个。", 100, 100), row("新的一段从这里开始。", 140, 200))
    )
    lines = page_lines(page1, SIZE) + page_lines(page2, SIZE)
    first, second = paragraphs_from_lines("a.pdf", lines)
    assert first.text == "全县新签约项目八十六个，其中亿元以上项目二十三个，新开工项目四十一个。"
    assert (first.page, first.page_breaks, second.page) == (1, (23,), 2)


@pytest.mark.parametrize(
    ("before", "after", "spaced", "joined"),
    [
        ("完成9", "8.6亿元", False, "完成98.6亿元"),  # a line break inside a number in Chinese text
        ("完成", "98.6亿元", True, "完成98.6亿元"),  # no space next to a Chinese character
        ("annual", "report", True, "annual report"),
        ("annual", "report", False, "annualreport"),
        ("develop-", "ment", True, "development"),  # a hyphenated line end
    ],
)
def test_join_text(before, after, spaced, joined):
    assert join_text(before, after, spaced) == joined


def test_words_of_one_column_of_english_are_not_taken_for_two_columns():
    words = ["The", "county", "built", "826", "base", "stations", "in", "2024", "and", "more"]
    boxes = []
    for i in range(8):  # each line's words shifted, so the spaces fall at different places
        x = 100.0 + 7 * i
        for word in words:
            boxes.append(Box(word, x, 100 + 30 * i, x + 10 * len(word), 120 + 30 * i, size=SIZE))
            x += 10 * len(word) + 8
    assert len(reading_order(boxes)) == 1
