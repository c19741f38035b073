import pytest

from rag.documents import decode, paragraphs_from_bytes, read_document
from rag.errors import DocumentError
from tests.conftest import SEEDS, SIMPLIFIED_SEED, TRADITIONAL_SEED


def by_text(paragraphs, needle):
    found = [p for p in paragraphs if needle in p.text]
    assert found, needle
    return found[0]


def test_simplified_seed_blank_line_layout_and_page_break_joins():
    paragraphs, sha = read_document(SEEDS / SIMPLIFIED_SEED)
    assert len(sha) == 64
    assert [p.paragraph for p in paragraphs] == list(range(1, len(paragraphs) + 1))
    joined = by_text(paragraphs, "大力推行城市精细化管理")
    assert "大力推行城市精细化管理,完成21条主次干道整治提升" in joined.text
    hospital = by_text(paragraphs, "县中医院独立")
    assert "县中医院独立办院开诊" in hospital.text
    # a page number line is not a paragraph, and headings are sections, not paragraphs
    assert not any(p.text.strip() in {"1", "2", "3"} for p in paragraphs)
    assert by_text(paragraphs, "有机作物种植面积达8万亩").section == "●有机农业提质增效"
    assert not any(p.text.startswith("●") for p in paragraphs)


def test_span_points_into_the_source():
    text = (SEEDS / SIMPLIFIED_SEED).read_text("utf-8")
    paragraphs, _ = read_document(SEEDS / SIMPLIFIED_SEED)
    p = by_text(paragraphs, "2024年左权县地区生产总值")
    assert text[p.start : p.end] == p.text
    joined = by_text(paragraphs, "大力推行城市精细化管理")
    assert text[joined.start : joined.end].replace("\n", "") == joined.text


def test_traditional_seed_single_newline_layout_speakers_and_furniture():
    paragraphs, _ = read_document(SEEDS / TRADITIONAL_SEED)
    carbon = by_text(paragraphs, "其中生產企業12家")
    assert carbon.section == "一、煤化工產業實現集群發展"
    assert carbon.speaker.endswith("高鵬")
    answer = by_text(paragraphs, "推進“不見面審批”系統是打破")
    assert answer.speaker.endswith("王永軍")
    assert by_text(paragraphs, "能否用具體數據").speaker == "山西農民報記者"
    # the chair's bare "主持人:" line keeps the full label given earlier
    assert "王瑤" in by_text(paragraphs, "由于時間的關系").speaker
    texts = " ".join(p.text for p in paragraphs)
    for furniture in ("掃一掃", "晉公網安備", "三晉通"):
        assert furniture not in texts
    assert not any(p.text.endswith("高鵬:") for p in paragraphs)  # speaker lines are not paragraphs


@pytest.mark.parametrize("codec", ["utf-8", "utf-8-sig", "gb18030", "big5", "utf-16"])
def test_encodings_are_detected(codec):
    text = "左雲縣經濟社會發展取得了顯著成就。\n\n全縣活性炭產業已形成完整產業鏈,集聚了14家活性炭企業。\n"
    if codec == "gb18030":
        text = "左云县经济社会发展取得了显著成就。\n\n全县活性炭产业已形成完整产业链,集聚了14家活性炭企业。\n"
    paragraphs = paragraphs_from_bytes(text.encode(codec), "doc.txt")
    assert len(paragraphs) == 2
    assert "14家活性炭" in paragraphs[1].text


def test_mojibake_and_bad_files_are_refused_with_a_reason():
    garbled = "左云县经济社会发展取得了显著成就".encode().decode("latin-1")
    with pytest.raises(DocumentError, match="garbled"):
        decode(garbled.encode("utf-8"), "bad.txt")
    with pytest.raises(DocumentError, match="empty"):
        paragraphs_from_bytes(b"   \n", "empty.txt")
    with pytest.raises(DocumentError, match="unsupported"):
        paragraphs_from_bytes(b"abc", "x.exe")
    with pytest.raises(DocumentError, match="not a .pdf"):
        paragraphs_from_bytes(b"hello", "fake.pdf")


def test_html_and_markdown_headings_become_sections():
    html = "<html><body><h2>一、产业发展</h2><p>全县集聚了14家企业。</p><p>产值达到5亿元。</p></body></html>"
    ps = paragraphs_from_bytes(html.encode(), "a.html")
    assert [p.text for p in ps] == ["全县集聚了14家企业。", "产值达到5亿元。"]
    assert ps[0].section == "一、产业发展"
    md = "# 标题\n\n## 二、民生\n\n每年民生支出占**财政支出**达76.6%。\n"
    ps = paragraphs_from_bytes(md.encode(), "b.md")
    assert ps[0].text == "每年民生支出占财政支出达76.6%。" and ps[0].section.endswith("二、民生")
