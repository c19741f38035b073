"""Checks a generated answer against the paragraphs it cites (pure, no model).

Rules: every [n] must point at a source that was given (others are dropped); every number, amount,
percentage and date in a sentence must appear, after normalisation, in a paragraph that the same
sentence cites; and a sentence that cites must share most of its wording with what it cites. Normalisation folds full-width forms, thousands separators, 万/亿/千 multipliers,
Chinese numerals (十四 → 14, 二〇二五 → 2025, 百分之九十 → 90%) and Traditional characters (萬 億 兩 點).
A bound the answer adds to a number ("98.75%以上" where the source says "98.75%") is a change too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from rag.text import to_simplified

# [1] [1,2] [1、2] ［1］ 【1】 (full-width brackets are folded by NFKC or listed here)
CITATION_RE = re.compile(r"[\[［【]\s*(\d{1,3}(?:\s*[,，、;；]\s*\d{1,3})*)\s*[\]］】]")
_SENTENCE_END = "。！？!?\n"

_CN_DIGITS = {
    "零": 0, "〇": 0, "○": 0, "Ｏ": 0,
    "一": 1, "壹": 1, "二": 2, "贰": 2, "貳": 2, "两": 2, "兩": 2,
    "三": 3, "叁": 3, "參": 3, "四": 4, "肆": 4, "五": 5, "伍": 5,
    "六": 6, "陆": 6, "陸": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_CN_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_BIG_UNITS = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}
_CN_POINT = "点點"
_CN_CHARS = "".join(_CN_DIGITS) + "".join(_CN_SMALL_UNITS) + "".join(_CN_BIG_UNITS) + _CN_POINT

# A Chinese numeral in running text counts as a number only when a unit or measure word follows it;
# this keeps 统一, 一般, “十四五” and the like out.
_MEASURES = (
    "%|％|‰|个|個|家|项|項|座|处|處|所|名|位|人|户|戶|次|件|条|條|台|臺|套|辆|輛|亩|畝|吨|噸|元|块|塊|"
    "年|月|日|号|號|天|周|週|岁|歲|倍|种|種|类|類|批|场|場|届|屆|栋|棟|间|間|层|層|公里|千米|米|"
    "平方|立方|千瓦|瓦|度|小时|小時|分钟|分鐘|秒|成|份|笔|筆|张|張|例|轮|輪|季|宗|棵|株|头|頭|只|隻|"
    "斤|克|升|万|萬|亿|億|余|餘|多|来|來|强|強|大"
)
_MEASURE_RE = re.compile(rf"(?:{_MEASURES})")
_ARABIC_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_CN_RUN_RE = re.compile(rf"[{_CN_CHARS}]+")
_PERCENT_RE = re.compile(r"[ \t]*%")
_CJK_RUN_RE = re.compile(r"[\u3400-\u9fff]+")
_NUMERAL_SPLIT_RE = re.compile(rf"[{_CN_CHARS}]+")
MIN_SUPPORT = 0.5  # share of a cited sentence's wording that its sources must contain
_ABOVE_AFTER = ("以上", "余", "餘", "多", "有余", "有餘")
_BELOW_AFTER = ("以下", "以内", "以內")
_ABOVE_BEFORE = ("超过", "超過", "超", "逾", "高于", "高於", "不少于", "不少於")
_BELOW_BEFORE = ("不到", "不足", "低于", "低於", "少于", "少於")


@dataclass(frozen=True)
class Quantity:
    """A normalised number: its value, whether it is a percentage, and a bound the text attaches."""

    value: Decimal
    percent: bool = False
    bound: str = ""  # "" | "above" | "below"
    surface: str = ""  # as written, for messages

    def label(self) -> str:
        return self.surface or (f"{self.value}%" if self.percent else str(self.value))


def fold(text: str) -> str:
    """Full-width digits, letters and punctuation to their plain forms (９８．７５％ → 98.75%)."""
    return unicodedata.normalize("NFKC", text)


def strip_citations(text: str) -> str:
    """The text without its [n] markers."""
    return CITATION_RE.sub("", fold(text))


def citation_numbers(text: str) -> list[int]:
    """Every [n] in the text, in order of appearance, repeats kept."""
    found: list[int] = []
    for m in CITATION_RE.finditer(fold(text)):
        found.extend(int(x) for x in re.split(r"[,，、;；\s]+", m.group(1)) if x)
    return found


def answer_sentences(text: str) -> list[str]:
    """Split an answer into sentences; markers right after 。 stay with the sentence before."""
    text = fold(text)
    out: list[str] = []
    buf = ""
    i = 0
    while i < len(text):
        ch = text[i]
        buf += ch
        i += 1
        if ch in _SENTENCE_END:
            # "…98.75%。[1][2]" — the markers belong to the sentence they follow
            while True:
                m = CITATION_RE.match(text, i) or re.compile(r"[ \t]+").match(text, i)
                if not m or not m.group(0):
                    break
                buf += m.group(0)
                i = m.end()
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def chinese_numeral_value(run: str) -> Decimal | None:
    """十四 → 14, 一百零五 → 105, 三千五百万 → 35000000, 二〇二五 → 2025, 一点五亿 → 150000000."""
    run = run.replace("點", "点")
    if not run or run[0] == "点" or run.count("点") > 1:
        return None
    integer, _, frac = run.partition("点")
    # the digits after 点 end at the first unit: 一点五亿 → 1.5 × 10^8
    suffix_mult = 1
    if frac:
        k = 0
        while k < len(frac) and frac[k] in _CN_DIGITS:
            k += 1
        tail, frac = frac[k:], frac[:k]
        if not frac:
            return None
        for ch in tail:
            if ch not in _CN_BIG_UNITS and ch not in _CN_SMALL_UNITS:
                return None
            suffix_mult *= _CN_BIG_UNITS.get(ch) or _CN_SMALL_UNITS[ch]
    if integer and all(ch in _CN_DIGITS for ch in integer) and (len(integer) > 1 or frac):
        int_value = Decimal("".join(str(_CN_DIGITS[ch]) for ch in integer))  # 二〇二五, 九十八点七五's 98
    else:
        parsed = _positional_value(integer) if integer else Decimal(0)
        if parsed is None:
            return None
        int_value = parsed
    value = int_value
    if frac:
        value = Decimal(f"{int_value}.{''.join(str(_CN_DIGITS[c]) for c in frac)}")
    return value * suffix_mult


def _positional_value(run: str) -> Decimal | None:
    total, section, digit = 0, 0, -1
    for ch in run:
        if ch in _CN_DIGITS:
            if digit >= 0 and digit != 0:
                return None  # two digits in a row, e.g. 十四五: not one number
            digit = _CN_DIGITS[ch]
        elif ch in _CN_SMALL_UNITS:
            section += (1 if digit < 0 else digit) * _CN_SMALL_UNITS[ch]
            digit = -1
        elif ch in _CN_BIG_UNITS:
            mult = _CN_BIG_UNITS[ch]
            section += max(digit, 0)
            if mult == 10**8 or section == 0:
                total = (total + section) * mult
            else:
                total += section * mult
            section, digit = 0, -1
        else:
            return None
    return Decimal(total + section + max(digit, 0))


def _multiplier(text: str, i: int) -> tuple[int, int]:
    """Multiplier written right after a number at text[i:] (万, 亿, 千万, 万亿 …) and its length."""
    mult, j = 1, i
    while j < len(text):
        ch = text[j]
        if ch in _CN_BIG_UNITS:
            mult *= _CN_BIG_UNITS[ch]
        elif ch in "千仟百佰" and j + 1 < len(text) and text[j + 1] in _CN_BIG_UNITS:
            mult *= _CN_SMALL_UNITS[ch]  # 3千万, 5百亿; but 98万千瓦 keeps 千瓦 as the unit
        else:
            break
        j += 1
    return mult, j - i


def _bound(text: str, start: int, end: int) -> str:
    after = text[end : end + 3]
    before = text[max(0, start - 3) : start]
    if after.startswith(_ABOVE_AFTER) or before.endswith(_ABOVE_BEFORE):
        return "above"
    if after.startswith(_BELOW_AFTER) or before.endswith(_BELOW_BEFORE):
        return "below"
    return ""


def _percent_after(text: str, i: int) -> int:
    m = _PERCENT_RE.match(text, i)
    return len(m.group(0)) if m else 0


def quantities(text: str) -> list[Quantity]:
    """Every number in the text, normalised; [n] markers are not numbers."""
    text = strip_citations(text)
    found: list[tuple[int, Quantity]] = []
    taken: list[tuple[int, int]] = []
    for m in _ARABIC_RE.finditer(text):
        start, end = m.span()
        if start > 0 and (text[start - 1].isalpha() and text[start - 1].isascii()):
            continue  # model names, codes: GDP2, A4
        if (start == 0 or text[start - 1] == "\n") and re.match(r"[.、)][^\d]", text[end : end + 2]):
            continue  # a list item's number: "1. …", "2、…"
        try:
            value = Decimal(m.group(0).replace(",", ""))
        except InvalidOperation:
            continue
        mult, n = _multiplier(text, end)
        end += n
        pct = _percent_after(text, end)
        percent = pct > 0 or text[max(0, start - 3) : start] == "百分之"
        end += pct
        if text[max(0, start - 3) : start] == "百分之":
            start -= 3
        q = Quantity(value * mult, percent, _bound(text, start, end), text[start:end])
        found.append((start, q))
        taken.append((start, end))
    for m in _CN_RUN_RE.finditer(text):
        start, end = m.span()
        if any(s < end and start < e for s, e in taken):
            continue
        run = m.group(0)
        percent = text[max(0, start - 3) : start] == "百分之"
        if not any(ch in _CN_DIGITS for ch in run):
            continue  # 万众一心's 万 alone
        standalone = run[-1] in _CN_BIG_UNITS or "点" in run or "點" in run
        if not (percent or standalone or _MEASURE_RE.match(text, end) or text[start - 1 : start] == "第"):
            continue
        if not percent and run in ("一", "壹") and text[end : end + 1] not in "年月日%元万萬亿億":
            continue  # 一个, 一家: an article more often than a quantity
        cn_value = chinese_numeral_value(run)
        if cn_value is None:
            continue
        pct = _percent_after(text, end)
        percent = percent or pct > 0
        end += pct
        if text[max(0, start - 3) : start] == "百分之":
            start -= 3
        found.append((start, Quantity(cn_value, percent, _bound(text, start, end), text[start:end])))
    return [q for _, q in sorted(found, key=lambda t: t[0])]


def supported(q: Quantity, pool: Sequence[Quantity]) -> bool:
    """Whether a paragraph's quantities state this one: same value, same kind, and any bound it adds."""
    for p in pool:
        if p.value != q.value:
            continue
        if q.percent and not p.percent:
            continue
        if q.bound and q.bound != p.bound:
            continue
        return True
    return False


def content_bigrams(text: str) -> set[str]:
    """Character bigrams of the Chinese words in a text, Simplified, numerals and markers left out."""
    plain = to_simplified(strip_citations(text))
    grams: set[str] = set()
    for run in _CJK_RUN_RE.findall(plain):
        for part in _NUMERAL_SPLIT_RE.split(run):
            grams.update(part[i : i + 2] for i in range(len(part) - 1))
    return grams


def overlap(text: str, reference: str) -> float:
    """Share of the text's content bigrams that the reference also has (1.0 when the text has none)."""
    grams = content_bigrams(text)
    return len(grams & content_bigrams(reference)) / len(grams) if grams else 1.0


def verify(answer_text: str, sources: Sequence[str]) -> tuple[bool, list[str], list[int]]:
    """Check an answer against sources numbered from 1 ([1] is sources[0]).

    Returns (ok, reasons, kept): kept lists the cited source numbers that exist, in order of first
    appearance. Citations to sources that were not given are dropped with a reason but do not fail
    the answer by themselves; no valid citation at all, or an unsupported number, fails it.
    """
    reasons: list[str] = []
    kept: list[int] = []
    dropped: list[int] = []
    for n in citation_numbers(answer_text):
        if 1 <= n <= len(sources):
            if n not in kept:
                kept.append(n)
        elif n not in dropped:
            dropped.append(n)
            reasons.append(f"citation [{n}] points at no given source ({len(sources)} given); dropped")
    if not kept:
        reasons.append("the answer cites none of the given sources")
    pools: dict[int, list[Quantity]] = {}
    ok = bool(kept)
    for sentence in answer_sentences(answer_text):
        cited = list(dict.fromkeys(n for n in citation_numbers(sentence) if 1 <= n <= len(sources)))
        if cited and len(content_bigrams(sentence)) >= 4:
            share = overlap(sentence, "\n".join(sources[n - 1] for n in cited))
            if share < MIN_SUPPORT:
                ok = False
                reasons.append(
                    f"“{strip_citations(sentence)[:60]}” shares only {share:.0%} of its wording with "
                    f"the sources it cites ({', '.join(f'[{n}]' for n in cited)})"
                )
        claims = quantities(sentence)
        if not claims:
            continue
        pool: list[Quantity] = []
        for n in cited:
            if n not in pools:
                pools[n] = quantities(sources[n - 1])
            pool.extend(pools[n])
        where = "the cited source" + ("s " + ", ".join(f"[{n}]" for n in cited) if cited else "s (none)")
        for q in claims:
            if not supported(q, pool):
                ok = False
                reasons.append(f"“{q.label()}” in “{strip_citations(sentence)[:60]}” is not in {where}")
    if ok:
        reasons.append(
            f"numbers and wording found in the cited sources; citations {', '.join(map(str, kept))} valid"
        )
    return ok, reasons, kept
