"""Tables in .docx, HTML, Markdown, .xlsx and .csv: each data row a self-contained paragraph with its
caption (or heading) and column headers; questions answered from cells and cited to the row."""

from __future__ import annotations

import io

import pytest

from rag.documents import parse_document
from rag.errors import DocumentError
from rag.tables import (
    MAX_ROW_CHARS,
    Table,
    grid_from_rows,
    grid_from_spans,
    header_rows,
    is_value,
    row_texts,
)

INDICATORS = [
    ("招商引资到位资金", "3.1亿元", "7.3亿元"),
    ("地区生产总值", "45.2亿元", "98.6亿元"),
    ("城镇新增就业", "2100人", "4120人"),
]


def make_docx() -> bytes:
    """A report with a heading, a paragraph, a captioned table with a two-level header (指标 merged down,
    2024年 merged across 上半年/全年) and a closing paragraph."""
    import docx

    d = docx.Document()
    d.add_heading("左权县2024年经济运行情况", level=1)
    d.add_paragraph("2024年，全县经济运行总体平稳，主要指标见下表。")
    d.add_paragraph("2024年主要指标", style="Caption")
    t = d.add_table(rows=2 + len(INDICATORS), cols=3)
    t.cell(0, 0).merge(t.cell(1, 0)).text = "指标"
    t.cell(0, 1).merge(t.cell(0, 2)).text = "2024年"
    t.cell(1, 1).text, t.cell(1, 2).text = "上半年", "全年"
    for i, row in enumerate(INDICATORS, start=2):
        for j, value in enumerate(row):
            t.cell(i, j).text = value
    d.add_paragraph("下一步，全县将继续扩大有效投资，推动经济持续向好。")
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def make_xlsx() -> bytes:
    """A sheet with a merged title row and a two-level merged header over numbers."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "农业"
    sheet.append(["2024年左权县农业生产情况"])
    sheet.merge_cells("A1:C1")
    sheet.append(["作物", "2024年", None])
    sheet.merge_cells("B2:C2")
    sheet.append([None, "播种面积（万亩）", "产量（万吨）"])
    sheet.merge_cells("A2:A3")
    sheet.append(["谷子", 8.2, 2.35])
    sheet.append(["玉米", 21.6, 12.75])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


CSV = "县名,人口（万人）,面积（平方公里）\n左权县,16.5,2028\n左云县,14.2,1314\n"


def cells(rows):
    return Table(grid_from_rows(rows))


# ---------------------------------------------------------------- pure: rows, headers, values


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("7.3亿元", True),
        ("5.2%", True),
        ("12", True),
        ("126公里", True),
        ("20km", True),
        ("约300人", True),
        ("2024年", False),  # a year heads a column
        ("2024年上半年", False),
        ("1-6月", False),
        ("一季度", False),
        ("2024", False),
        ("5G基站", False),  # a label that holds a digit
        ("同比增长5%", False),
        ("招商引资到位资金", False),
    ],
)
def test_is_value(text, value):
    assert is_value(text) is value


@pytest.mark.parametrize(
    ("rows", "context", "expected"),
    [
        (  # a header row, a label column
            [["指标", "2023年", "2024年"], ["地区生产总值", "90.1亿元", "98.6亿元"]],
            "主要指标",
            ["主要指标 · 地区生产总值 · 2023年：90.1亿元，2024年：98.6亿元"],
        ),
        (  # years name the rows
            [["年份", "产值"], ["2023", "5亿元"], ["2024", "6亿元"]],
            "",
            ["2023 · 产值：5亿元", "2024 · 产值：6亿元"],
        ),
        (  # no label column: every cell under its header
            [["产量", "产值"], ["5万吨", "5亿元"], ["6万吨", "6亿元"]],
            "",
            ["产量：5万吨，产值：5亿元", "产量：6万吨，产值：6亿元"],
        ),
        (  # two columns of label and value, no header row
            [["项目名称", "左权县城区供热管网改造工程"], ["总投资", "1.2亿元"]],
            "",
            ["项目名称：左权县城区供热管网改造工程", "总投资：1.2亿元"],
        ),
        (  # a blank upper header cell is the merged cell to its left (as CSV leaves it); empty cells skipped
            [["指标", "2024年", None], ["", "上半年", "全年"], ["粮食产量", "6.2万吨", ""]],
            "",
            ["粮食产量 · 2024年上半年：6.2万吨"],
        ),
        (  # a first row of figures is data, not a header
            [["左权县", "16.5", "2028"], ["左云县", "14.2", "1314"]],
            "两县",
            ["两县 · 左权县 · 16.5，2028", "两县 · 左云县 · 14.2，1314"],
        ),
    ],
)
def test_row_texts(rows, context, expected):
    assert [r.text for r in row_texts(cells(rows), context)] == expected


def test_merged_cells_and_multi_row_headers_from_spans():
    # 指标 spans two header rows, 2024年 two columns; 第一产业 spans two data rows
    grid = grid_from_spans(
        [
            [("类别", 2, 1), ("指标", 2, 1), ("2024年", 1, 2)],
            [("上半年", 1, 1), ("全年", 1, 1)],
            [("第一产业", 2, 1), ("增加值", 1, 1), ("5.1亿元", 1, 1), ("11.2亿元", 1, 1)],
            [("增速", 1, 1), ("3.2%", 1, 1), ("4.1%", 1, 1)],
        ]
    )
    table = Table(grid)
    assert header_rows([list(r) for r in grid]) == 2
    rows = row_texts(table, "表1")
    assert [(r.row, r.text) for r in rows] == [
        (1, "表1 · 第一产业 · 指标：增加值，2024年上半年：5.1亿元，2024年全年：11.2亿元"),
        (2, "表1 · 第一产业 · 指标：增速，2024年上半年：3.2%，2024年全年：4.1%"),
    ]


def test_a_wide_row_is_split_and_every_piece_keeps_its_context_and_label():
    header = ["指标"] + [f"{m}月" for m in range(1, 61)]
    data = ["规模以上工业增加值"] + [f"{m * 1.1:.1f}亿元" for m in range(1, 61)]
    rows = row_texts(cells([header, data]), "2024年月度指标")
    assert len(rows) > 1 and {r.row for r in rows} == {1}
    assert all(len(r.text) <= MAX_ROW_CHARS for r in rows)
    assert all(r.text.startswith("2024年月度指标 · 规模以上工业增加值 · ") for r in rows)
    assert "60月：66.0亿元" in rows[-1].text
    assert sum(r.text.count("亿元") for r in rows) == 60  # no cell lost or repeated


# ---------------------------------------------------------------- formats


def test_docx_table_rows_carry_caption_and_two_level_headers():
    parsed = parse_document(make_docx(), "report.docx")
    texts = [p.text for p in parsed.paragraphs]
    assert texts[0] == "2024年，全县经济运行总体平稳，主要指标见下表。"
    assert texts[-1].startswith("下一步")
    rows = [p for p in parsed.paragraphs if p.table]
    assert [(p.table, p.row) for p in rows] == [(1, 1), (1, 2), (1, 3)]
    assert rows[0].text == "2024年主要指标 · 招商引资到位资金 · 2024年上半年：3.1亿元，2024年全年：7.3亿元"
    assert rows[0].section == "左权县2024年经济运行情况"
    assert "2024年主要指标" not in texts[:1]  # the caption heads the rows, it is no paragraph of its own
    assert (parsed.stats.paragraphs, parsed.stats.tables, parsed.stats.table_rows) == (5, 1, 3)
    assert parsed.stats.summary() == "5 paragraphs, 1 table (3 rows)"


def test_html_table_with_thead_caption_rowspan_and_colspan():
    html = """<html><body><h2>一、主要指标</h2><p>全年主要指标如下。</p>
    <table><caption>2024年主要指标</caption>
    <thead><tr><th rowspan=2>指标</th><th colspan=2>2024年</th></tr><tr><th>上半年</th><th>全年</th></tr></thead>
    <tr><td>招商引资到位资金</td><td>3.1亿元</td><td>7.3亿元</td></tr>
    <tr><td>地区生产总值</td><td>45.2亿元</td><td>98.6亿元</td></tr></table>
    <p>以上数据为初步统计。</p></body></html>"""
    ps = parse_document(html.encode(), "a.html").paragraphs
    assert [(p.table, p.row) for p in ps] == [(0, 0), (1, 1), (1, 2), (0, 0)]
    assert ps[2].text == "2024年主要指标 · 地区生产总值 · 2024年上半年：45.2亿元，2024年全年：98.6亿元"
    source = html[ps[1].start : ps[1].end]  # the span covers the table
    assert "<td>招商引资到位资金</td>" in source and source.endswith("98.6亿元")


def test_markdown_pipe_table_rows_take_the_heading_above():
    md = "## 2024年主要指标\n\n| 指标 | 2023年 | 2024年 |\n|---|---:|---:|\n| 招商引资到位资金 | 5.1亿元 | 7.3亿元 |\n\n全县经济稳中向好。\n"
    ps = parse_document(md.encode(), "a.md").paragraphs
    assert ps[0].text == "2024年主要指标 · 招商引资到位资金 · 2023年：5.1亿元，2024年：7.3亿元"
    assert (ps[0].table, ps[0].row, ps[1].table) == (1, 1, 0)


def test_xlsx_title_row_is_the_caption_and_merged_headers_combine():
    ps = parse_document(make_xlsx(), "农业.xlsx").paragraphs
    assert [p.text for p in ps] == [
        "2024年左权县农业生产情况 · 谷子 · 2024年播种面积（万亩）：8.2，2024年产量（万吨）：2.35",
        "2024年左权县农业生产情况 · 玉米 · 2024年播种面积（万亩）：21.6，2024年产量（万吨）：12.75",
    ]


@pytest.mark.parametrize("codec", ["utf-8", "gb18030"])
def test_csv_rows_are_captioned_by_the_file_name(codec):
    ps = parse_document(CSV.encode(codec), "两县基本情况.csv").paragraphs
    assert [p.text for p in ps] == [
        "两县基本情况 · 左权县 · 人口（万人）：16.5，面积（平方公里）：2028",
        "两县基本情况 · 左云县 · 人口（万人）：14.2，面积（平方公里）：1314",
    ]


def test_a_renamed_file_is_refused_by_content():
    with pytest.raises(DocumentError, match="not a .xlsx"):
        parse_document(b"not a workbook", "a.xlsx")
    with pytest.raises(DocumentError, match="neither a .docx"):
        parse_document(b"PK\x03\x04" + b"\0" * 30, "a.xlsx")


# ---------------------------------------------------------------- answered from cells, cited to the row


@pytest.fixture(scope="module")
def tables_engine(tmp_path_factory):
    import rag

    root = tmp_path_factory.mktemp("tables")
    docs = root / "docs"
    docs.mkdir()
    (docs / "report.docx").write_bytes(make_docx())
    (docs / "农业.xlsx").write_bytes(make_xlsx())
    (docs / "两县基本情况.csv").write_text(CSV, encoding="utf-8")
    return rag.Engine.build([str(docs)], index_dir=root / "index")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "answer", "doc", "row"),
    [
        ("2024年全年招商引资到位资金是多少？", "7.3亿元", "report.docx", 1),
        ("2024年上半年地区生产总值是多少？", "45.2亿元", "report.docx", 2),
        ("2024年全年城镇新增就业多少人？", "4120人", "report.docx", 3),
        ("2024年玉米产量是多少万吨？", "12.75", "农业.xlsx", 2),
        ("左云县面积是多少平方公里？", "1314", "两县基本情况.csv", 2),
    ],
)
def test_questions_answered_from_table_cells_are_cited_to_the_row(tables_engine, question, answer, doc, row):
    result = tables_engine.ask(question)
    assert result.found and answer in result.text, result.text
    cited = result.citations[0]
    assert (cited.doc, cited.table, cited.row) == (doc, 1, row)
    assert answer in cited.quote


@pytest.mark.parametrize(
    "html",
    [
        "<table><tr><td>首页</td><td>新闻</td><td>政务公开</td></tr></table>",  # a row of links
        "<table><tr><td>"
        + "正文很长。" * 50
        + "</td><td>侧栏</td></tr><tr><td>页脚</td><td>联系</td></tr></table>",
        "<table><tr><td><table><tr><td>甲</td><td>乙</td></tr></table></td><td>丙</td></tr><tr><td>丁</td><td>戊</td></tr></table>",  # a layout table holding another
    ],
)
def test_html_layout_tables_are_read_as_lines_not_rows(html):
    assert all(
        p.table == 0
        for p in parse_document(f"<html><body>{html}</body></html>".encode(), "a.html").paragraphs
    )
