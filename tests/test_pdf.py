"""Text PDFs through pdfplumber: lines joined into paragraphs, running heads and page numbers dropped,
headings as sections, page numbers on every paragraph, a paragraph across a page break joined, ruled tables
read as rows; made here with reportlab's built-in STSong-Light CID font."""

from __future__ import annotations

import io

import pytest

from rag.documents import parse_document
from rag.errors import DocumentError

pytest.importorskip("reportlab")

FONT, SIZE, LEAD = "STSong-Light", 11, 18
RUNNING_HEAD = "左权县人民政府工作报告"
FILLER = "项工作稳步推进，全县各乡镇围绕年度目标任务，细化工作措施，压实工作责任，确保各项工作落到实处、取得实效，群众满意度持续提升。同时，加强督查考核，对工作推进不力的单位及时约谈提醒。"
# The paragraph that runs from the foot of page 1 onto page 2, cut inside a sentence.
ACROSS = (
    "过去一年，我们坚持项目为王，全力以赴抓招商、上项目、优环境，全年新签约项目86个，其中亿元以上项目23个，"
    "新开工项目41个，累计完成投资达到156.8亿元，同比增长18.2%，项目建设成为拉动全县经济增长的主引擎。"
    "全县新增市场主体5230户，为高质量发展积蓄了强劲动能。"
)


class Flow:
    """Paragraphs typeset on A4 pages the way a word processor exports them: a running head and a page
    number on every page, a two-character first-line indent, lines broken wherever the width runs out."""

    def __init__(self) -> None:
        from reportlab.lib.pagesizes import A4
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont
        from reportlab.pdfgen import canvas

        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
        self.width, self.height = A4
        self.left, self.right = 72, self.width - 72
        self.out = io.BytesIO()
        self.c = canvas.Canvas(self.out, pagesize=A4)
        self.page = 1
        self.breaks: list[str] = []  # the text each page starts with
        self._furniture()

    def _furniture(self) -> None:
        self.c.setFont(FONT, 9)
        self.c.drawString(self.left, self.height - 40, RUNNING_HEAD)
        self.c.drawCentredString(self.width / 2, 40, f"- {self.page} -")
        self.y = self.height - 90

    def _new_page(self) -> None:
        self.c.showPage()
        self.page += 1
        self._furniture()

    def heading(self, text: str) -> None:
        self.c.setFont(FONT, 16)
        self.c.drawString(self.left, self.y, text)
        self.y -= 30

    def paragraph(self, text: str) -> None:
        lines: list[tuple[float, str]] = []
        line, indent = "", 2 * SIZE
        for ch in text:
            if self.c.stringWidth(line + ch, FONT, SIZE) > self.right - self.left - indent:
                lines.append((indent, line))
                line, indent = "", 0
            line += ch
        lines.append((indent, line))
        for indent, body in lines:
            if self.y < 90:
                self._new_page()
                self.breaks.append(body)
            self.c.setFont(FONT, SIZE)
            self.c.drawString(self.left + indent, self.y, body)
            self.y -= LEAD
        self.y -= 6

    def table(self, rows: list[list[str]], spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> None:
        from reportlab.platypus import Table, TableStyle

        style = [("FONT", (0, 0), (-1, -1), FONT, 10), ("GRID", (0, 0), (-1, -1), 0.5, "black")]
        style += [("SPAN", a, b) for a, b in spans]
        table = Table(rows, style=TableStyle(style))
        _, h = table.wrapOn(self.c, self.right - self.left, self.height)
        table.drawOn(self.c, self.left, self.y - h)
        self.y -= h + 20

    def save(self) -> bytes:
        self.c.showPage()
        self.c.save()
        return self.out.getvalue()


def make_report() -> tuple[bytes, Flow]:
    flow = Flow()
    flow.heading("一、2024年工作回顾")
    flow.paragraph("2024年，左权县地区生产总值完成98.6亿元，同比增长5.2%，增速居全市第二位。")
    for n in "一二三四五六七八九十":
        flow.paragraph(f"第{n}{FILLER}")
    flow.paragraph(ACROSS)
    flow.heading("二、主要指标")
    flow.table(
        [
            ["指标", "2024年", ""],
            ["", "上半年", "全年"],
            ["粮食产量", "6.2万吨", "12.8万吨"],
            ["5G基站", "410个", "826个"],
        ],
        spans=[((0, 0), (0, 1)), ((1, 0), (2, 0))],
    )
    flow.paragraph("县中医院独立办院开诊，新增床位300张，群众就医条件明显改善。")
    return flow.save(), flow


@pytest.fixture(scope="module")
def report():
    data, flow = make_report()
    return data, flow, parse_document(data, "report.pdf")


def test_paragraph_across_a_page_break_is_joined_and_knows_both_pages(report):
    _, flow, parsed = report
    assert flow.page == 2 and flow.breaks  # the generator did cut the paragraph
    across = [p for p in parsed.paragraphs if p.text.startswith("过去一年")]
    assert len(across) == 1 and across[0].text == ACROSS  # no line break, no space, nothing lost
    (cut,) = across[0].page_breaks
    assert across[0].page == 1 and across[0].text[cut:].startswith(flow.breaks[0])


def test_lines_join_into_paragraphs_with_pages_and_sections(report):
    _, _, parsed = report
    texts = [p.text for p in parsed.paragraphs]
    assert texts[0] == "2024年，左权县地区生产总值完成98.6亿元，同比增长5.2%，增速居全市第二位。"
    assert texts[1] == f"第一{FILLER}"  # three typeset lines, one paragraph
    assert parsed.paragraphs[0].section == "一、2024年工作回顾"
    assert parsed.paragraphs[-1].section == "二、主要指标"
    assert (parsed.paragraphs[0].page, parsed.paragraphs[-1].page) == (1, 2)
    assert not any(RUNNING_HEAD in t or t.strip("- ").isdigit() for t in texts)  # running head, page numbers
    assert parsed.stats.pages == 2 and parsed.stats.pages_ocr == 0


def test_ruled_table_with_merged_cells_becomes_rows(report):
    _, _, parsed = report
    rows = [p for p in parsed.paragraphs if p.table]
    assert [(p.table, p.row, p.page) for p in rows] == [(1, 1, 2), (1, 2, 2)]
    assert rows[0].text == "二、主要指标 · 粮食产量 · 2024年上半年：6.2万吨，2024年全年：12.8万吨"
    assert parsed.stats.summary().startswith(
        f"{len(parsed.paragraphs)} paragraphs, 1 table (2 rows), 2 pages"
    )


def test_report_says_what_was_left_out(report):
    _, _, parsed = report
    assert parsed.stats.notes == ["4 running heads, footers and page numbers left out"]
    flow = Flow()
    flow.paragraph("第一页只有这一段文字，说明后面的一页是空白页。")
    flow.c.showPage()  # a blank page 2
    flow.page += 1
    blank = parse_document(flow.save(), "blank-page.pdf")
    assert blank.stats.pages == 2 and "page 2: blank" in blank.stats.notes


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "not a readable PDF"),
        (b"%PDF-1.7\n" + b"\x00garbage" * 20, "not a readable PDF"),
        (b"<html>not a pdf</html>", "not a .pdf file"),
    ],
)
def test_a_malformed_pdf_is_refused_with_a_reason(data, reason):
    with pytest.raises(DocumentError, match=reason):
        parse_document(data, "bad.pdf")


@pytest.mark.slow
def test_pdf_answers_are_cited_with_their_page(tmp_path, report):
    import rag

    data, _, _ = report
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.pdf").write_bytes(data)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    engine = rag.Engine.build([str(docs)], index_dir=tmp_path / "index")
    assert [
        s.path.endswith("broken.pdf") and "not a readable PDF" in s.reason for s in engine.last_report.skipped
    ] == [True]
    # a sentence after the page break, in the paragraph that began on page 1: cited with page 2
    answer = engine.ask("全县新增市场主体多少户？")
    assert answer.found and "5230户" in answer.text, answer.text
    cited = answer.citations[0]
    assert (cited.doc, cited.paragraph, cited.page, cited.page_end) == ("report.pdf", 12, 2, 2)
    # the sentence broken across the page is answered whole, its quote on pages 1 and 2
    answer = engine.ask("全年新开工项目多少个？")
    assert answer.found and "41个" in answer.text, answer.text
    cited = answer.citations[0]
    assert "新开工项目41个" in cited.quote and (cited.page, cited.page_end) == (1, 2)
    answer = engine.ask("县中医院新增床位多少张？")
    assert answer.found and "300张" in answer.text and answer.citations[0].page == 2
