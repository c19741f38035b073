"""Scanned PDFs and images, OCR'd offline: a page rendered as scans are (two columns of Chinese at 150 dpi,
turned 1.5°, JPEG quality 60, wrapped as an image-only PDF) is read in column order, indexed and answered
with its page; character accuracy and OCR speed are measured. One OCR run of the scan per module."""

from __future__ import annotations

import io
import time

import pytest
from scan_support import cjk_font, image_only_pdf, jpeg

from rag.documents import parse_document
from rag.errors import DocumentError

pytest.importorskip("rapidocr_onnxruntime")
pytest.importorskip("reportlab")

DPI = 150
TITLE = "左权县二〇二四年经济社会发展情况"
LEFT = [
    "2024年，左权县地区生产总值完成98.6亿元，同比增长5.2%，增速居全市第二位。",
    "全县新建改建农村公路126公里，完成投资3.4亿元，实现了所有行政村通硬化路。",
    "全年接待游客1280万人次，旅游总收入突破120亿元，红色旅游品牌持续打响。",
]
RIGHT = [
    "县中医院独立办院开诊，新增床位300张，群众就医条件明显改善。",
    "全县累计建成5G基站826个，实现乡镇以上区域全覆盖，数字乡村建设提速。",
    "城镇新增就业4120人，登记失业率控制在3%以内，就业形势总体稳定。",
]
MIN_ACCURACY = 0.95


def scan_page(left: list[str], right: list[str], title: str = TITLE):
    """A page as a scanner gives it: an A4 image at 150 dpi, a title across two columns of paragraphs
    (first lines indented two characters), turned 1.5°."""
    from PIL import Image, ImageDraw

    width, height = int(8.27 * DPI), int(11.69 * DPI)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    body, head = cjk_font(26), cjk_font(40)
    draw.text(((width - draw.textlength(title, font=head)) // 2, 140), title, font=head, fill=0)
    gutter, margin = 70, 110
    column = (width - 2 * margin - gutter) // 2

    def typeset(paragraphs: list[str], x0: int, y: int) -> None:
        for text in paragraphs:
            line, indent = "", 2 * 26
            for ch in text:
                if draw.textlength(line + ch, font=body) > column - indent:
                    draw.text((x0 + indent, y), line, font=body, fill=0)
                    y, line, indent = y + 42, "", 0
                line += ch
            draw.text((x0 + indent, y), line, font=body, fill=0)
            y += 42 + 20

    typeset(left, margin, 240)
    typeset(right, margin + column + gutter, 240)
    return image.rotate(1.5, resample=Image.Resampling.BICUBIC, fillcolor=255)


def accuracy(expected: str, read: str) -> float:
    """Character accuracy: 1 - edit distance / length of the text rendered."""
    from rapidfuzz.distance import Levenshtein

    return 1 - Levenshtein.distance(expected, read) / len(expected)


@pytest.fixture(scope="module")
def scan():
    pdf = image_only_pdf(jpeg(scan_page(LEFT, RIGHT)))
    progress: list[tuple[int, int]] = []
    started = time.perf_counter()
    parsed = parse_document(pdf, "scan.pdf", on_page=lambda done, total: progress.append((done, total)))
    return pdf, parsed, progress, time.perf_counter() - started


def test_scan_is_read_in_column_order_with_its_page(scan):
    _, parsed, progress, _ = scan
    texts = [p.text for p in parsed.paragraphs]
    assert len(texts) == len(LEFT) + len(RIGHT)
    # each paragraph found where it was rendered: left column top to bottom, then the right
    order = [max(range(len(texts)), key=lambda i: accuracy(sentence, texts[i])) for sentence in LEFT + RIGHT]
    assert order == list(range(len(texts)))
    assert all(p.page == 1 and 0.5 < p.ocr_confidence <= 1 for p in parsed.paragraphs)
    assert accuracy(TITLE, parsed.paragraphs[0].section) > 0.85  # the title, set larger, heads the page
    assert progress == [(1, 1)]
    assert parsed.stats.pages == 1 and parsed.stats.pages_ocr == 1
    assert parsed.stats.summary() == "6 paragraphs, 1 page (1 OCR'd)"


def test_scan_character_accuracy_and_speed(scan):
    _, parsed, _, seconds = scan
    read = "".join(p.text for p in parsed.paragraphs)
    score = accuracy("".join(LEFT + RIGHT), read)
    chars_per_s = parsed.stats.ocr_chars / parsed.stats.ocr_seconds
    print(
        f"\nOCR: character accuracy {score:.3f}, {parsed.stats.ocr_chars} characters in {seconds:.1f} s "
        f"({chars_per_s:.0f} chars/s OCR alone)"
    )
    assert score >= MIN_ACCURACY, read


def test_an_image_file_is_ocrd_and_a_blank_one_refused(tmp_path):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 300), "white")  # rapidocr scales a side under 736 px up: keep it small
    ImageDraw.Draw(image).text((20, 120), "全县累计建成5G基站826个。", font=cjk_font(40), fill="black")
    out = io.BytesIO()
    image.save(out, "PNG")
    parsed = parse_document(out.getvalue(), "notice.png")
    assert [p.page for p in parsed.paragraphs] == [0]  # an image has no pages
    assert accuracy("全县累计建成5G基站826个。", parsed.paragraphs[0].text) >= MIN_ACCURACY
    blank = io.BytesIO()
    Image.new("RGB", (600, 400), (200, 220, 240)).save(blank, "PNG")
    with pytest.raises(DocumentError, match="OCR found no text in the image"):
        parse_document(blank.getvalue(), "photo.png")
    with pytest.raises(DocumentError, match="not a readable image"):
        parse_document(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "broken.png")


@pytest.mark.slow
def test_scanned_pdf_is_indexed_and_answered_with_its_page(tmp_path, scan):
    from PIL import Image

    import rag

    pdf, _, _, _ = scan
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scan.pdf").write_bytes(pdf)  # OCR'd once: the module's reading is kept
    (docs / "blank.jpg").write_bytes(jpeg(Image.new("L", (600, 400), 255)))
    (docs / "notes.txt").write_text("县城新建停车位1200个，缓解了停车难问题。\n", encoding="utf-8")
    engine = rag.Engine.build([str(docs)], index_dir=tmp_path / "index")
    assert sorted(d.doc for d in engine.documents()) == ["notes.txt", "scan.pdf"]
    (skipped,) = engine.last_report.skipped
    assert skipped.path.endswith("blank.jpg") and "OCR found no text" in skipped.reason
    for question, answer in [
        ("左权县地区生产总值完成多少亿元？", "98.6亿元"),  # left column
        ("全县累计建成多少个5G基站？", "826个"),  # right column
        ("城镇新增就业多少人？", "4120人"),
    ]:
        result = engine.ask(question)
        assert result.found and answer in result.text, (question, result.text)
        assert (result.citations[0].doc, result.citations[0].page) == ("scan.pdf", 1)


def test_low_confidence_lines_are_flagged_on_their_paragraph_and_in_the_report():
    from rag.documents import DocumentStats
    from rag.layout import Box, body_size, page_lines
    from rag.ocr import LOW_CONFIDENCE, PageText
    from rag.paragraphs import paragraphs_from_lines

    sure = Box("全县累计建成5G基站826个，实现乡镇", 100, 100, 500, 126, size=26, confidence=0.99)
    unsure = Box("以上区域全覆盖。", 100, 142, 308, 168, size=26, confidence=0.61)
    page = PageText(1, 1240, 1754, (sure, unsure), seconds=1.0)
    assert page.low_confidence == [unsure] and unsure.confidence < LOW_CONFIDENCE
    (paragraph,) = paragraphs_from_lines("scan.pdf", page_lines(page.as_page(), body_size([page.as_page()])))
    assert (
        paragraph.text == "全县累计建成5G基站826个，实现乡镇以上区域全覆盖。"
        and paragraph.ocr_confidence == 0.61
    )
    stats = DocumentStats(paragraphs=1, pages=1, pages_ocr=1, low_confidence=1)
    assert stats.summary() == "1 paragraph, 1 page (1 OCR'd, 1 low-confidence line)"
