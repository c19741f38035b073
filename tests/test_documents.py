import pytest

from rag.documents import (
    chinese_word_share,
    decode,
    lines_from_html,
    misreading_of,
    paragraphs_from_bytes,
    read_document,
)
from rag.errors import DocumentError
from rag.text import to_simplified, to_traditional
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


# ---------------------------------------------------------------- HTML: block and inline elements

INLINE_HTML = """<!doctype html><html><head><title>左云县新闻发布会</title></head><body>
<nav><a href="/">首页</a></nav>
<h2>一、煤化工产业实现集群发展</h2>
<p>目前，全县活性炭产业已形成完整产业链，集聚了<strong>14家</strong>活性炭企业，其中生产企业<b>12家</b>。</p>
<p>2024年活性炭产量达<b><i>5.52万吨</i></b>，同比增长16.45%，详见<a href="/report">年度
  统计公报</a>。</p>
<h2>二、新材料产业</h2>
<p>全县新材料企业<span class="n"><a href="#x"><em>共有</em><strong>9家</strong></a></span>，产值3.94亿元。<br>
下一步将继续扩大规模。</p>
<div>本届发布会由县委宣传部主办。<p>发布会共有二十家媒体参加。</p>会后答记者问。</div>
<footer>版权所有</footer>
</body></html>"""


def test_html_inline_tags_stay_inside_their_paragraph():
    ps = paragraphs_from_bytes(INLINE_HTML.encode(), "zy.html")
    texts = [p.text for p in ps]
    assert texts == [
        "目前，全县活性炭产业已形成完整产业链，集聚了14家活性炭企业，其中生产企业12家。",  # <strong>, <b>
        "2024年活性炭产量达5.52万吨，同比增长16.45%，详见年度统计公报。",  # <b><i>, a link across a line
        "全县新材料企业共有9家，产值3.94亿元。",  # <span><a><em> and <strong> nested
        "下一步将继续扩大规模。",  # <br> ends a line
        "本届发布会由县委宣传部主办。",  # a div's own text around a nested <p>
        "发布会共有二十家媒体参加。",
        "会后答记者问。",
    ]
    assert [p.section for p in ps[:4]] == ["一、煤化工产业实现集群发展"] * 2 + ["二、新材料产业"] * 2
    assert not any("14家" in p.section or "首页" in p.text or "版权" in p.text for p in ps)


@pytest.mark.parametrize(
    ("html", "lines"),
    [
        ("<p>全县<strong>14</strong>家</p>", ["全县14家"]),
        ("<p>a <b>bold</b> word</p>", ["a bold word"]),  # spaces the author typed stay
        ("<p>全县集聚了\n  14家企业</p>", ["全县集聚了 14家企业"]),
        ("<p>全县集聚\n了14家企业</p>", ["全县集聚了14家企业"]),  # a source line break between Chinese: none
        ("<ul><li>第一项<b>甲</b></li><li>第二项</li></ul>", ["第一项甲", "第二项"]),
        ("<table><tr><td>第一行</td></tr><tr><td>第二行</td></tr></table>", ["第一行", "第二行"]),  # layout
        ("<blockquote>引文<em>一句</em></blockquote><p>正文</p>", ["引文一句", "正文"]),
        ("<pre>第一行\n第二行</pre>", ["第一行", "第二行"]),
        ("<p>甲<!-- 注释 -->乙</p><script>var x = '丙';</script>", ["甲乙"]),
        ("<p>第二行&nbsp;文字&amp;符号</p>", ["第二行 文字&符号"]),
    ],
)
def test_html_lines_follow_block_and_inline_elements(html, lines):
    assert [line.text for line in lines_from_html(html)] == lines


def test_html_heading_lines_and_spans_point_into_the_source():
    html = "<h1>标题<small>副</small></h1><p>全县集聚了<strong>14家</strong>企业。</p>"
    heading, body = lines_from_html(html)
    assert (heading.text, heading.heading, body.heading) == ("标题副", True, False)
    assert html[body.start : body.end] == "全县集聚了<strong>14家</strong>企业。"


@pytest.mark.slow
def test_engine_answers_a_figure_inside_strong(tmp_path):
    import rag

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zy.html").write_text(INLINE_HTML, encoding="utf-8")
    engine = rag.Engine.build([str(docs)], index_dir=tmp_path / "index")
    answer = engine.ask("全县集聚了多少家活性炭企业?")
    assert answer.found and "14家" in answer.text
    assert answer.citations[0].paragraph == 1
    assert answer.citations[0].section == "一、煤化工产业实现集群发展"
    answer = engine.ask("全县新材料企业有几家?")
    assert answer.found and "9家" in answer.text


# ---------------------------------------------------------------- mojibake that looks like Chinese

SIMPLIFIED = "2024年左权县地区生产总值突破80亿元,较“十三五”末增加22.5亿元,年均增长8.6%;农村居民人均可支配收入年均增长10.5%,连续4年跑赢GDP。"
TRADITIONAL = "“十四五”期間,每年民生支出占財政支出達76.6%。脫貧攻堅成果持續鞏固。就業規模持續擴大,累計完成城鎮新增就業25106人。"


def _misread(text: str, written: str, read_as: str, errors: str = "replace") -> str:
    return text.encode(written).decode(read_as, errors=errors)


def _lost_then_read_as_gbk(text: str, written: str) -> str:
    """锟斤拷: the bytes decoded as UTF-8 (every Chinese character lost to U+FFFD), saved, read as GBK."""
    return _misread(_misread(text, written, "utf-8"), "utf-8", "gbk")


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("左云县经济社会发展", 1.0, 1.0),  # 左云县 / 经济社会 / 发展
        ("左雲縣經濟社會發展", 1.0, 1.0),  # compared in Simplified form
        ("床前明月光，疑是地上霜。", 0.5, 0.5),  # 明月光, 地上 of ten characters
        (SIMPLIFIED, 0.6, 1.0),
        (_misread(SIMPLIFIED, "utf-8", "gbk"), 0.0, 0.05),  # real characters in random order
        (_misread(TRADITIONAL, "big5", "gbk"), 0.0, 0.05),
        ("The county had 14 firms.", 0.0, 0.0),  # no Chinese characters at all
    ],
)
def test_chinese_word_share(text, low, high):
    assert low <= chinese_word_share(text) <= high


GBK_READ_AS_BIG5 = "GBK text decoded as Big5"
UTF8_READ_AS_GBK = "UTF-8 text decoded as GBK"
BIG5_READ_AS_GBK = "Big5 text decoded as GBK"

# (what happened, the text, the misreading found or None); every text a real sentence, garbled in the test
MISREADING_EXAMPLES = [
    ("UTF-8 read as GBK", _misread(SIMPLIFIED, "utf-8", "gbk"), UTF8_READ_AS_GBK),
    ("UTF-8 read as GBK, Traditional", _misread(TRADITIONAL, "utf-8", "gbk"), UTF8_READ_AS_GBK),
    ("UTF-8 read as GBK, bytes dropped", _misread(SIMPLIFIED, "utf-8", "gbk", "ignore"), UTF8_READ_AS_GBK),
    ("GBK read as Big5", _misread(SIMPLIFIED, "gbk", "big5"), GBK_READ_AS_BIG5),
    ("GBK read as Big5, bytes dropped", _misread(SIMPLIFIED, "gbk", "big5", "ignore"), GBK_READ_AS_BIG5),
    ("Big5 read as GBK", _misread(TRADITIONAL, "big5", "gbk"), BIG5_READ_AS_GBK),
    ("Big5 read as GBK, bytes dropped", _misread(TRADITIONAL, "big5", "gbk", "ignore"), BIG5_READ_AS_GBK),
    ("锟斤拷 from GBK", _lost_then_read_as_gbk(SIMPLIFIED, "gbk"), UTF8_READ_AS_GBK),
    ("锟斤拷 from Big5", _lost_then_read_as_gbk(TRADITIONAL, "big5"), UTF8_READ_AS_GBK),
    ("clean Simplified", SIMPLIFIED, None),
    ("clean Traditional", TRADITIONAL, None),
    (
        "classical Chinese",
        "子曰：学而时习之，不亦说乎？有朋自远方来，不亦乐乎？人不知而不愠，不亦君子乎？",
        None,
    ),
    ("a poem in Traditional", "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。", None),
    ("a list of names", "张伟、王芳、李娜、刘洋、陈静、杨帆、赵磊、黄敏", None),
    ("Japanese", "東京都は日本の首都です。人口は約千四百万人で、世界有数の大都市である。", None),
    ("English", "The county had 14 activated carbon firms in 2024.", None),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [row[1:] for row in MISREADING_EXAMPLES],
    ids=[row[0] for row in MISREADING_EXAMPLES],
)
def test_misreading_of(text, expected):
    found = misreading_of(text)
    assert (found.label if found else None) == expected


# Mojibake saved as UTF-8 decodes cleanly; saved in GB18030 it decodes cleanly as GB18030 (and as Big5 too).
SAVED_MOJIBAKE = [(row[0], row[1], "utf-8") for row in MISREADING_EXAMPLES if row[2]] + [
    (row[0], row[1], "gb18030")
    for row in MISREADING_EXAMPLES
    if row[2] in (UTF8_READ_AS_GBK, GBK_READ_AS_BIG5)
]


@pytest.mark.parametrize(
    ("text", "codec"),
    [row[1:] for row in SAVED_MOJIBAKE],
    ids=[f"{r[0]}, saved {r[2]}" for r in SAVED_MOJIBAKE],
)
def test_mojibake_files_are_refused_with_how_they_were_garbled(text, codec):
    data = (text + "\n\n") * 3 + "本文件共三段。\n"
    with pytest.raises(DocumentError, match="garbled text") as refused:
        paragraphs_from_bytes(data.encode(codec), "garbled.txt")
    assert "save it as UTF-8" in refused.value.reason


def _seed_paragraphs() -> list[str]:
    return [p.text for seed in (SIMPLIFIED_SEED, TRADITIONAL_SEED) for p in read_document(SEEDS / seed)[0]]


@pytest.mark.parametrize(("script", "codec"), [("hans", "gb18030"), ("hant", "big5"), ("hans", "utf-8")])
def test_every_seed_paragraph_saved_alone_reads_back_exactly(script, codec):
    """Short files are where detectors guess wrong: 谢谢! in GBK is valid UTF-8 (лл!), a greeting line in GBK
    was read as Big5. Each paragraph of both seeds, in one script and saved alone, must come back as it was."""
    convert = to_simplified if script == "hans" else to_traditional
    texts = [convert(t) for t in _seed_paragraphs()]
    encodable = [t for t in texts if t.encode(codec, errors="replace").decode(codec) == t]
    assert len(encodable) >= 48
    assert [t for t in encodable if decode(t.encode(codec), "p.txt") != t] == []
