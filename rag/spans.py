"""Typed candidate answer spans inside one sentence: the short answers worth ranking.

Recall comes first (the ranker can only choose a span proposed here): numbers with their measure word or
unit, percentages, amounts, ratios, dates, people, organisations, places, titles in 《》, quoted terms, the phrase
after 是/为/叫/称, every short run of jieba words inside a clause, and whole clauses for questions that ask
how or why. Pure: a sentence in, spans out; offsets are those of the sentence as given.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

import jieba.posseg as pseg

from rag.text import CLAUSE_END, ROMAN_NUMERALS, normalize


class SpanType(Enum):
    """What a candidate span is, most specific first (a span found twice keeps the first type here)."""

    TITLE = "title"  # 《…》
    QUOTED = "quoted"  # “…”, 「…」
    DATE = "date"
    PERCENT = "percent"
    AMOUNT = "amount"  # a sum of money: 3.94亿元
    NUMBER = "number"  # a figure with its measure word or unit: 14家, 5.52万吨
    PERSON = "person"
    ORGANISATION = "organisation"
    PLACE = "place"
    NAME = "name"  # another proper name (jieba nz) or a Latin word
    COPULA = "copula"  # the phrase after 是/为/叫/称, to the end of its clause
    CLAUSE = "clause"
    TAIL = "tail"  # the rest of a clause (or of two) from a word on: a long noun phrase that ends it
    CHUNK = "chunk"  # a run of jieba words inside a clause


_PRIORITY = {t: i for i, t in enumerate(SpanType)}

# A run of more words than this is a clause, not a short answer (CMRC 2018 dev: 95 % of the gold answers
# that are runs of whole jieba words inside a clause are at most 6 words long; see evals/fit_answer.py).
MAX_CHUNK_WORDS = 6
# Longest candidate other than a clause, in characters (a title or a quote may be long; 98 % of the
# CMRC 2018 / DRCD dev gold answers are shorter).
MAX_SPAN_CHARS = 40
# Longest run of clauses proposed as one answer for a how/why question.
MAX_CLAUSES = 3
# Longest rest of a clause proposed (64 % of the CMRC 2018 dev gold answers that no shorter candidate
# matched run from a word to the end of their clause).
MAX_TAIL_CHARS = 60

# Generic endings of organisation names (not names of particular organisations): sorted, no duplicates.
ORGANISATION_SUFFIXES = (
    "中学",
    "中心",
    "乐团",
    "俱乐部",
    "党",
    "公司",
    "办公室",
    "医院",
    "协会",
    "厂",
    "厅",
    "基金会",
    "大学",
    "委",
    "委员会",
    "学会",
    "学校",
    "学院",
    "小学",
    "局",
    "政府",
    "法院",
    "研究所",
    "研究院",
    "社",
    "组织",
    "联合会",
    "联盟",
    "银行",
    "队",
    "集团",
)
# Generic endings of place names (administrative units and landforms): sorted, no duplicates.
PLACE_SUFFIXES = (
    "乡",
    "半岛",
    "县",
    "国",
    "山",
    "岛",
    "州",
    "市",
    "村",
    "江",
    "河",
    "洲",
    "湖",
    "省",
    "镇",
)
# Words after which the rest of the clause says what something is, is called or counts as.
COPULAS = (
    "为",
    "乃",
    "即",
    "叫",
    "叫做",
    "名为",
    "是",
    "称",
    "称为",
    "被称为",
)
# Function words a short answer neither opens nor closes with: sorted, no duplicates.
EDGE_WORDS = (
    "与",
    "为",
    "也",
    "了",
    "于",
    "和",
    "在",
    "就",
    "并",
    "很",
    "把",
    "是",
    "的",
    "着",
    "而",
    "被",
    "过",
    "还",
    "都",
)
_EDGE = frozenset(EDGE_WORDS)
_PERSON_TAGS = frozenset({"nr", "nrfg", "nrt"})
_NOUN_TAGS = frozenset({"n", "nr", "nrfg", "nrt", "ns", "nt", "nz", "ng", "j", "eng", "vn"})
# Words after a name that make it a period (战国 | 时期, 明朝 | 初年): sorted, no duplicates.
PERIOD_WORDS = ("中期", "初年", "初期", "年间", "时代", "时期", "末年", "末期")
_OPENERS = {"《": "》", "“": "”", "「": "」", "『": "』", "‘": "’", '"': '"', "(": ")", "（": "）"}

# 千 and 百 before 瓦, 米, 克, 伏… open a unit (千瓦, 千米), not a magnitude (500万千瓦 is 500万 of 千瓦)
_NUMBER = (
    r"(?:\d+(?:[.,]\d+)*(?:多|余|几)?|[零〇一二两三四五六七八九十百千]+|["
    + ROMAN_NUMERALS
    + r"])(?:(?:[万亿]|[千百](?![瓦米克伏帕焦卡兆]))+)?"
)
_NUMBER_RE = re.compile(r"(?:约|近|超过|逾|达)?(" + _NUMBER + r")(?:\s*(?:-|~|～|至|到)\s*" + _NUMBER + ")?")
_WRITTEN_FIGURE = re.compile(r"[\d" + ROMAN_NUMERALS + "]")  # a figure in digits or Roman numerals (Ⅱ类)
_PERCENT_RE = re.compile(r"百分之[零〇一二两三四五六七八九十百点\d.]+|" + _NUMBER + r"\s*(?:%|‰|个百分点|成)")
# Units that make a figure a sum of money (元 also ends 美元, 日元, 港元…).
CURRENCY_UNITS = (
    "元",
    "卢布",
    "圆",
    "币",
    "法郎",
    "镑",
)
# Figures joined by a colon or 比: a ratio or a score (10.7:36.9:52.4, 1比3) or a clock time (21:00), one
# answer although the colon also ends a clause.
_RATIO_RE = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?:\s*[:比]\s*\d+(?:\.\d+)?)+(?![\d.])")
_MAGNITUDES = frozenset({"万", "亿", "千", "百", "万亿", "千万", "百万"})
_DATE_PART = re.compile(r"年|月")
_DATE_RE = re.compile(
    r"(?:公元前?|西元前?|前)?(?:\d{1,4}|[零〇一二三四五六七八九十]{1,4})\s*年(?:代)?"
    r"(?:\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*[日号])?)?(?:初|底|末|中|春|夏|秋|冬)?"
    r"|\d{1,2}\s*月\s*\d{1,2}\s*[日号]|(?<![\d.])\d{1,2}\s*月(?:初|底|中旬|上旬|下旬)?"
    r"|(?:\d{1,2}|[一二三四五六七八九十]{1,3})\s*世纪(?:\s*\d0\s*年代)?(?:初|中|末|中叶|初期|中期|末期|上半叶|下半叶)?"
)


@dataclass(frozen=True)
class Token:
    """A jieba word of a sentence: its offsets, text and part-of-speech tag."""

    start: int
    end: int
    word: str
    tag: str


@dataclass(frozen=True)
class Candidate:
    """A candidate answer span: sentence offsets and what it is."""

    start: int
    end: int
    type: SpanType


def matching_form(text: str) -> str:
    """The matching form of a text with the same length, so offsets in one are offsets in the other."""
    folded = normalize(text)
    if len(folded) == len(text):
        return folded
    return "".join((normalize(c) or c)[0] for c in text)


@lru_cache(maxsize=4096)
def tokens(sentence: str) -> tuple[Token, ...]:
    """The sentence's jieba words with part-of-speech tags, over its matching form."""
    out: list[Token] = []
    at = 0
    for pair in pseg.lcut(matching_form(sentence)):
        word, tag = pair.word, pair.flag
        out.append(Token(at, at + len(word), word, tag))
        at += len(word)
    return tuple(out)


def _is_break(word: str) -> bool:
    return word.isspace() or any(c in CLAUSE_END for c in word)


def _is_mark(word: str) -> bool:
    """A word of punctuation only (、, 《, ”): a short answer neither opens nor closes with one."""
    return all(unicodedata.category(c)[0] in "PSZ" for c in word)


def _figure_spans(norm: str) -> list[tuple[int, int]]:
    """Dates and numbers with their unit, which a run of words must not cut into (年1月10)."""
    return [m.span() for m in _DATE_RE.finditer(norm)] + [m.span() for m in _NUMBER_RE.finditer(norm)]


def _chunks(norm: str, toks: tuple[Token, ...]) -> list[tuple[int, int, SpanType]]:
    """Runs of up to MAX_CHUNK_WORDS words inside a clause, not opening or closing on a function word or a
    mark, nor cutting into a date or a figure."""
    inside: set[int] = set()
    for a, b in _figure_spans(norm):
        inside.update(range(a + 1, b))
    out: list[tuple[int, int, SpanType]] = []
    for i, first in enumerate(toks):
        if _is_break(first.word) or first.word in _EDGE or _is_mark(first.word) or first.start in inside:
            continue
        for j in range(i, min(len(toks), i + MAX_CHUNK_WORDS)):
            last = toks[j]
            if _is_break(last.word) or last.end - first.start > MAX_SPAN_CHARS:
                break
            if (
                last.word not in _EDGE
                and not _is_mark(last.word)
                and not last.word.endswith(".")  # jieba keeps a list number's dot: 5.
                and last.end not in inside
            ):
                out.append((first.start, last.end, SpanType.CHUNK))
    return out


def _tails(toks: tuple[Token, ...]) -> list[tuple[int, int, SpanType]]:
    """From each word on, the rest of its clause and of the clause after it (位于 | 中国山西省…公园内)."""
    ends: list[int] = []  # the end of the clause each word stands in, and of the one after
    for t in toks:
        if _is_break(t.word):
            ends.append(t.start)
    ends.append(toks[-1].end if toks else 0)
    out: list[tuple[int, int, SpanType]] = []
    for t in toks:
        if _is_break(t.word) or t.word in _EDGE or _is_mark(t.word):
            continue
        following = [e for e in ends if e >= t.end][:2]
        for e in following:
            if e - t.start <= MAX_TAIL_CHARS:
                out.append((t.start, e, SpanType.TAIL))
    return out


def _entities(toks: tuple[Token, ...]) -> list[tuple[int, int, SpanType]]:
    """People, places and other names from jieba's tags; organisations and places also by their ending,
    over up to three words (北京大学 / 国家统计局 / 山西省)."""
    out: list[tuple[int, int, SpanType]] = []
    for i, t in enumerate(toks):
        if t.tag in _PERSON_TAGS and len(t.word) >= 2:
            out.append((t.start, t.end, SpanType.PERSON))
        elif t.tag == "ns":
            out.append((t.start, t.end, SpanType.PLACE))
        elif t.tag == "nt":
            out.append((t.start, t.end, SpanType.ORGANISATION))
        elif t.tag in ("nz", "eng"):
            out.append((t.start, t.end, SpanType.NAME))
        for j in range(max(0, i - 2), i + 1):
            if t.end - toks[j].start < 2 or any(x.tag not in _NOUN_TAGS for x in toks[j : i + 1]):
                continue
            text = "".join(x.word for x in toks[j : i + 1])
            if text.endswith(ORGANISATION_SUFFIXES):
                out.append((toks[j].start, t.end, SpanType.ORGANISATION))
            elif text.endswith(PLACE_SUFFIXES) and (j < i or t.tag.startswith("n")):
                out.append((toks[j].start, t.end, SpanType.PLACE))
    return out


def _figures(norm: str, toks: tuple[Token, ...]) -> list[tuple[int, int, SpanType]]:
    """Numbers alone and with the measure word or unit after them, percentages, amounts and dates."""
    out: list[tuple[int, int, SpanType]] = []
    following = {t.start: t for t in toks}
    # a word that runs on past a figure's end (亿元 after 3.94亿) stands for the unit from the figure's end
    covering = {at: t for t in toks for at in range(t.start + 1, t.end)}
    for m in _DATE_RE.finditer(norm):
        out.append((m.start(), m.end(), SpanType.DATE))
        for part in _DATE_PART.finditer(m.group(0)):  # 2023年 and 2023年3月 out of 2023年3月15日
            if part.end() < len(m.group(0)):
                out.append((m.start(), m.start() + part.end(), SpanType.DATE))
    for i, t in enumerate(toks):  # dynasties and periods: 明朝, 唐代, 战国时期
        if 2 <= len(t.word) <= 3 and t.word[-1] in "朝代" and t.tag in _NOUN_TAGS | {"t"}:
            out.append((t.start, t.end, SpanType.DATE))
        if (
            i + 1 < len(toks)
            and toks[i + 1].word in PERIOD_WORDS
            and not _is_break(t.word)
            and not _is_mark(t.word)
        ):
            out.append((t.start, toks[i + 1].end, SpanType.DATE))
    for m in _PERCENT_RE.finditer(norm):
        out.append((m.start(), m.end(), SpanType.PERCENT))
    for m in _NUMBER_RE.finditer(norm):
        if not _WRITTEN_FIGURE.search(m.group(0)) and not _counted(norm, m.end()):
            continue  # a Chinese numeral inside a word (一起, 统一) rather than a count
        end = m.end()
        unit = following.get(end) or covering.get(end)
        for start in dict.fromkeys((m.start(), m.start(1))):
            out.append((start, end, SpanType.NUMBER))
            if unit is None or _is_break(unit.word) or _is_mark(unit.word) or len(unit.word) > 3:
                continue
            unit_end = unit.end
            after = following.get(unit_end)
            if (
                unit.word in _MAGNITUDES
                and after is not None
                and len(after.word) <= 2
                and not _is_mark(after.word)
            ):
                unit_end = after.end  # 1.5 万 人 → 1.5万人
            if unit_end - end > 3:
                continue
            text = norm[end:unit_end]
            if any(_is_mark(c) for c in text):
                continue  # a list number's dot (5.统一…, one word to jieba) is no unit
            kind = SpanType.AMOUNT if any(u in text for u in CURRENCY_UNITS) else SpanType.NUMBER
            out.append((start, unit_end, kind))
    return out


def _counted(norm: str, end: int) -> bool:
    """Whether a Chinese numeral ending at `end` counts something (a measure word or unit follows)."""
    return end < len(norm) and norm[end] in "个家位名人次项件条座年岁种倍元米吨亩只台部本首场届所"


def _enclosed(norm: str) -> list[tuple[int, int, SpanType]]:
    """Titles in 《》 and quoted terms, with and without their marks."""
    out: list[tuple[int, int, SpanType]] = []
    for i, c in enumerate(norm):
        close = _OPENERS.get(c)
        if close is None or c in "(（":
            continue
        j = norm.find(close, i + 1)
        if j < 0 or j - i > MAX_SPAN_CHARS:
            continue
        kind = SpanType.TITLE if c == "《" else SpanType.QUOTED
        out.append((i, j + 1, kind))
        if j > i + 1:
            out.append((i + 1, j, kind))
    return out


def _after_copula(toks: tuple[Token, ...]) -> list[tuple[int, int, SpanType]]:
    """The phrase after 是/为/叫/称 to the end of its clause (X的首都是巴黎 → 巴黎)."""
    out: list[tuple[int, int, SpanType]] = []
    for i, t in enumerate(toks):
        if t.word not in COPULAS or i + 1 >= len(toks):
            continue
        j = i + 1
        while j < len(toks) and not _is_break(toks[j].word):
            j += 1
        if j > i + 1 and toks[j - 1].end - toks[i + 1].start <= MAX_SPAN_CHARS:
            out.append((toks[i + 1].start, toks[j - 1].end, SpanType.COPULA))
    return out


def _clauses(norm: str) -> list[tuple[int, int, SpanType]]:
    """Whole clauses and runs of up to MAX_CLAUSES of them: the answers to how and why."""
    bounds: list[tuple[int, int]] = []
    start = 0
    for i, c in enumerate(norm):
        if c in CLAUSE_END:
            if i > start:
                bounds.append((start, i))
            start = i + 1
    if start < len(norm):
        bounds.append((start, len(norm)))
    out: list[tuple[int, int, SpanType]] = []
    for i in range(len(bounds)):
        for j in range(i, min(len(bounds), i + MAX_CLAUSES)):
            out.append((bounds[i][0], bounds[j][1], SpanType.CLAUSE))
    return out


def _trim(norm: str, start: int, end: int) -> tuple[int, int]:
    while start < end and norm[start].isspace():
        start += 1
    while end > start and (norm[end - 1].isspace() or norm[end - 1] in CLAUSE_END):
        end -= 1
    return start, end


def candidate_spans(sentence: str) -> list[Candidate]:
    """Every candidate answer span of a sentence, each (start, end) once with its most specific type,
    in reading order."""
    norm = matching_form(sentence)
    toks = tokens(sentence)
    ratios = [m.span() for m in _RATIO_RE.finditer(norm)]
    found = (
        [(a, b, SpanType.NUMBER) for a, b in ratios]
        + _enclosed(norm)
        + _figures(norm, toks)
        + _entities(toks)
        + _after_copula(toks)
        + _clauses(norm)
        + _tails(toks)
        + _chunks(norm, toks)
    )
    best: dict[tuple[int, int], SpanType] = {}
    for start, end, kind in found:
        key = _trim(norm, start, end)
        # a ratio's colons end no clause: no clause, tail or run of words starts or ends between its terms
        if key[1] <= key[0] or any(a < at < b for a, b in ratios for at in key):
            continue
        held = best.get(key)
        if held is None or _PRIORITY[kind] < _PRIORITY[held]:
            best[key] = kind
    return [Candidate(a, b, t) for (a, b), t in sorted(best.items())]
