"""Pure Chinese text helpers: script conversion, word segmentation, sentence and clause spans.

Everything that matches text compares Simplified forms (opencc, phrase-level dictionaries), so a
Traditional question finds a Simplified paragraph and the reverse.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

import jieba
import opencc

jieba.setLogLevel(logging.WARNING)

_T2S = opencc.OpenCC("t2s")
_S2T = opencc.OpenCC("s2t")

HANS = "hans"
HANT = "hant"

# Function words and question words carry no topic; they are dropped from matching.
STOP_WORDS = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "有",
        "和",
        "与",
        "及",
        "或",
        "也",
        "都",
        "就",
        "而",
        "被",
        "把",
        "对",
        "从",
        "为",
        "以",
        "于",
        "之",
        "比",  # comparison prepositions: 比2020年 in a question, 较2020年 in the text
        "较",
        "其",
        "这",
        "那",
        "这个",
        "那个",
        "这些",
        "那些",
        "该",
        "此",
        "吗",
        "呢",
        "吧",
        "啊",
        "么",
        "呀",
        "嘛",
        "哪",
        "哪个",
        "哪些",
        "哪里",
        "哪儿",
        "哪年",
        "哪一年",
        "哪家",
        "什么",
        "什么样",
        "多少",
        "几",
        "几个",
        "几家",
        "几年",
        "谁",
        "如何",
        "怎么",
        "怎样",
        "怎么样",
        "为什么",
        "为何",
        "何",
        "何时",
        "何地",
        "多",
        "多大",
        "多长",
        "多久",
        "请问",
        "请",
        "问",
        "告诉",
        "我",
        "我们",
        "你",
        "你们",
        "他",
        "她",
        "它",
        "他们",
        "她们",
        "它们",
        "个",
        "家",
        "项",
        "位",
        "名",
        "年",
        "月",
        "日",
        "中",
        "其中",
        "分别",
        "一共",
        "共",
        "总共",
        "已经",
        "已",
        "将",
        "会",
        "能",
        "可以",
        "可",
        "要",
        "又",
        "还",
        "并",
        "等",
        "等等",
        "方面",
        "情况",
        "问题",
        "一些",
        "一下",
        "一个",
        "上",
        "下",
        "里",
        "内",
        "到",
        "得",
        "地",
        "着",
        "过",
        "给",
        "让",
        "向",
        "由",
        "所",
        "通过",
        "关于",
        "根据",
        "以及",
        "还是",
        "是否",
        "不是",
        "没有",
        "?",
        "时候",
        "职务",
        "职位",
        "身份",
        "头衔",
        "担任",
        "哪天",
        "哪一天",
        "哪年",
        "几号",
        "几月",
        "何日",
        "何年",
        "现在",
        "目前",
        "如今",
        "当前",
        "具体",
        "主要",
        "大概",
        "大约",
        "哪几个",
        "哪几",
        "做了",
        "做",
        "拿到",
        "叫",
        "是什么",
        "什么样",
        "怎么回事",
        "有关",
        "相关",
        "提到",
        "说",
        "讲",
        "各",
        "各是",
        "各有",
        "各自",
        "分别",
        "更",
        "更高",
        "更多",
        "更大",
        "更低",
        "更少",
        "更快",
        "相比",
        "比较",
        "两个",
        "两",
        "呢",
        "啥",
        "哪儿",
        "多大",
        "多长",
        "多高",
        "多久",
        "什么样",
        "吗",
    ]
)

_PUNCT_RE = re.compile(r"^[\W_]+$", re.UNICODE)
# a citation marker in an answer text: [1], [2] …
CITATION_MARKER = re.compile(r"\[(\d+)\]")
_CJK_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

# Roman numerals as Chinese reports write classes and grades (Ⅱ类水质, Ⅲ级); normalize lower-cases them (ⅱ).
ROMAN_NUMERALS = "\u2160-\u217f"
SENTENCE_END = "。！？!?；;…"
CLAUSE_END = SENTENCE_END + "，,：:"  # not 、: an enumeration ("28.9%、58%") answers together
_CLOSERS = "”’」』)）】》\"'"


def to_simplified(text: str) -> str:
    return _T2S.convert(text)


def to_traditional(text: str) -> str:
    return _S2T.convert(text)


def script_of(text: str) -> str:
    """HANT when the text holds more Traditional-only than Simplified-only characters, else HANS."""
    hans = to_simplified(text)
    hant = to_traditional(text)
    trad = sum(1 for a, b in zip(text, hans, strict=False) if a != b)
    simp = sum(1 for a, b in zip(text, hant, strict=False) if a != b)
    return HANT if trad > simp else HANS


def to_script(text: str, script: str) -> str:
    """Convert text to the given script (HANS or HANT)."""
    return to_traditional(text) if script == HANT else to_simplified(text)


def normalize(text: str) -> str:
    """The matching form of a text: Simplified, lower-case, full-width ASCII folded to half-width."""
    folded = text.translate(_FULLWIDTH)
    return to_simplified(folded).lower()


_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20


# Words that only shape a question ("哪一种", "文中提及"): never evidence, so never matched against a text.
QUESTION_WORDS = frozenset(
    [
        "哪一",
        "哪一个",
        "哪一种",
        "哪一位",
        "哪一类",
        "哪一座",
        "哪一部",
        "哪一项",
        "哪一条",
        "哪种",
        "哪类",
        "哪位",
        "哪部",
        "哪座",
        "哪条",
        "哪所",
        "哪支",
        "哪本",
        "哪首",
        "哪场",
        "哪方面",
        "一种",
        "甚么",
        "何处",
        "何种",
        "何人",
        "何者",
        "东西",
        "文中",
        "提及",
        "本文",
        "文章",
        "得知",
    ]
)


def is_content_word(word: str) -> bool:
    return bool(word.strip()) and word not in STOP_WORDS and not _PUNCT_RE.match(word)


# 几 that asks how many. After 这/那/近/好 it means "a few" (这几年, 那几个项目, 近几年, 好几家); after 前 it may
# ask (世界前几名) or not (前几天), so it asks; 几十 asks too (领导几万大军?). 几乎 and 几何 are words of their own.
ASKING_JI = r"(?<![这那近好])几(?![乎何])"
# 几 or 哪 with its measure word (几类, 第几, 哪国), as jieba may cut them into one word: where the answer
# stands, not a word a text could hold (哪怕 and 哪吒 are words; as a word, 几十 is a rough figure).
_ASKING_WORD = re.compile(r"(?:第?" + ASKING_JI + r"|哪(?![怕吒]))(?![十百千万亿])[\u4e00-\u9fff]?")


def _question_word(word: str) -> bool:
    return is_content_word(word) and word not in QUESTION_WORDS and not _ASKING_WORD.fullmatch(word)


@lru_cache(maxsize=4096)
def _cut(text: str) -> tuple[str, ...]:
    return tuple(jieba.cut_for_search(text))


# Interrogatives split off before segmenting, so they cannot glue onto a neighbour (一个多大规模 →
# 一个多 / 大规模 instead of 规模).
_INTERROGATIVE = re.compile(
    r"多大|多少|多长|多高|多久|多远|多重|多深|什么|哪些|哪里|哪儿|哪个|哪一|几个|几家|几种|谁"
)


def _question_text(text: str) -> str:
    return _INTERROGATIVE.sub("，", normalize(text))


def segmented(text: str) -> tuple[str, ...]:
    """A text cut into words (jieba precise mode; not cached: passages' windows are seen once)."""
    return tuple(jieba.cut(text))


_cut_precise = lru_cache(maxsize=4096)(segmented)  # questions: asked again by retrieval and the answerer


def words(text: str) -> list[str]:
    """Content words of a question in matching form (jieba search mode over the Simplified text): for BM25."""
    return [w for w in _cut(normalize(text)) if _question_word(w)]


def keywords(text: str) -> list[str]:
    """Content words without overlaps (jieba precise mode): for weighing how much of a question a text holds."""
    return list(dict.fromkeys(w for w in _cut_precise(_question_text(text)) if _question_word(w)))


def tokens_for_index(text: str) -> list[str]:
    """Words for the BM25 index (the same segmentation as questions, no cache: texts are seen once)."""
    return [w for w in jieba.cut_for_search(normalize(text)) if is_content_word(w)]


_PAIR_CHAR = re.compile(r"[0-9a-z\u3400-\u9fff]")
_PAIR_RUN = re.compile(_PAIR_CHAR.pattern + "{2,}")


def char_pairs(text: str) -> set[str]:
    """Adjacent character pairs of a matching-form text (Chinese characters, digits, Latin letters): words
    without a segmenter, so a question and a paragraph that jieba cuts differently still meet."""
    return {run[i : i + 2] for run in _PAIR_RUN.findall(text) for i in range(len(run) - 1)}


def question_pairs(text: str) -> set[str]:
    """A question's character pairs, none across an interrogative (左权县有多少家 → 左权, 权县, 县有)."""
    return char_pairs(_question_text(text))


def question_chars(text: str) -> str:
    """A question's matching form with interrogatives and punctuation dropped: what a restating sentence
    would share with it, in order."""
    return "".join(c for c in _question_text(text) if _PAIR_CHAR.match(c))


def has_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


def _spans(text: str, ends: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        if text[i] in ends or text[i] == "\n":
            j = i + 1
            while j < n and (text[j] in ends or text[j] in _CLOSERS):
                j += 1
            spans.append((start, j))
            start = j
            i = j
        else:
            i += 1
    if start < n:
        spans.append((start, n))
    return [(a, b) for a, b in (_strip_span(text, a, b) for a, b in spans) if b > a]


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end) of a text; closing quotes stay with their sentence."""
    return _spans(text, SENTENCE_END)


def clauses(text: str) -> list[tuple[int, int]]:
    """Clause spans: sentences cut further at commas, enumeration commas and colons."""
    return _spans(text, CLAUSE_END)
