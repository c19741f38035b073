"""A question analysed once into a frozen value: what it asks for, about whom, in which words, and what a
follow-up carries over from the turn before.

Every later stage (retrieval, the answerer's rules, sentences, spans, scoring, refusal) reads this value;
none re-normalises or re-segments the question. Pure: `analyse_question` takes the question, the chat
history and the index's vocabulary and returns a `Question`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import cached_property, lru_cache
from typing import Literal

import jieba
import jieba.posseg as pseg

from rag.text import (
    ASKING_JI,
    HANT,
    STOP_WORDS,
    keywords,
    normalize,
    question_chars,
    question_pairs,
    script_of,
    to_script,
    words,
)

# A question longer than this is a pasted text followed by the question itself, which ends it: only the
# last MAX_ANALYSED_CHARS characters are segmented (CMRC 2018 / DRCD dev questions are at most ~90 long).
MAX_ANALYSED_CHARS = 256
# Keywords kept, rarest first: beyond this a question is a pasted text and more words only add cost.
MAX_KEYWORDS = 24

Script = Literal["simplified", "traditional"]
History = Sequence[Mapping[str, str]]

COMMON_WORD = 500  # jieba dictionary frequency from which a word is too common to name one subject
_ENTITY_TAGS = {"ns", "nr", "nt", "nz", "nrt", "nrfg"}
PLACE_SUFFIX = re.compile(r"^.{1,8}(?:省|市|县|区|州|镇|乡|村|旗|盟|局|厅|委|院|公司|集团|大学|银行)$")
# Suffixes with which a bare place stem in a question (左权) names a place the documents know (左权县).
_STEM_SUFFIXES = "县市省区镇乡村州"
_ASKS_WHO_ASKED = re.compile(r"(谁|哪家|哪个|哪位|什么).{0,8}(问|提问)|问了|提问了")
_ASKS_WHO_ANSWERED = re.compile(
    r"(谁|哪位|什么人).{0,4}(回答|答复|解答)|(回答|答复|解答)的?是谁|由谁(回答|答复|解答)"
)
# A turn that opens with one of these leans on the one before (其中规模以上的有几家?).
_ANAPHORA = re.compile(
    r"^(?:其中|其|它|它们|他|她|他们|她们|这|那|该|此|上述|前者|后者|那么|还有|另外|再|比|与之|同期|相比)"
)


class QuestionKind(Enum):
    """The kind of thing a question asks for."""

    NUMBER = "number"
    DATE = "date"
    PERSON = "person"
    PLACE = "place"
    ORGANISATION = "organisation"
    TITLE = "title"
    DEFINITION = "definition"  # 什么是 X / X 是什么 / X 指什么
    EXPLANATION = "explanation"  # 为什么 / 如何 / 怎样: the answer is a clause, not a phrase
    OTHER = "other"


# The interrogative phrase: the word that stands where the answer would (什么, 多少, 哪一年, 谁…), with the
# measure word after 哪 (哪个, 哪位); the one after 几/多少 is added by `measure_word`. Longest first.
INTERROGATIVE = re.compile(
    r"为什么|为何|怎么样|怎样|怎么|如何"
    r"|什么时候|什么时间|什么地方|什么人|什么样的?|什么|甚么|啥"
    r"|哪[一两三四五六七八九十几]?[个位家种年天些里儿座部所条项类支本首场国省市县队次届]?"
    r"|何时|何地|何处|何人|何种|何年|何日|何者"
    r"|多大|多长|多久|多高|多远|多重|多深|多宽|多快|多厚|多少"
    r"|" + ASKING_JI + r"|谁"
)

# Question shapes that say what kind of answer is asked for, tried in this order (a date question also
# says 哪, a definition also says 什么). Each pattern is a closed list of question words, not of topics.
_KIND_PATTERNS: tuple[tuple[QuestionKind, re.Pattern[str]], ...] = (
    (
        QuestionKind.EXPLANATION,
        re.compile(r"为什么|为何|怎么样|怎样|如何|怎么(?!称)|什么原因|原因是|目的是|何故"),
    ),
    (
        QuestionKind.DATE,
        re.compile(
            r"什么时候|什么时间|何时|何年|何日|哪[一]?年|哪[一]?天|哪[一个]?月|"
            + ASKING_JI
            + r"[月号日]|哪个?时期|"
            r"哪个?朝代|什么朝代|哪个?世纪|哪个?年代|什么年代|日期|年份|哪一?时"
        ),
    ),
    (
        QuestionKind.NUMBER,
        re.compile(
            r"多少|(?<!哪)"
            + ASKING_JI
            + r"|多大|多长|多久|多高|多远|多重|多深|多宽|多快|多厚|比例|百分之|比重|占比|增速|增长率"
        ),
    ),
    (
        QuestionKind.PERSON,
        re.compile(
            r"谁|哪[一]?位|何人|什么人|哪个人|哪些人|哪名|哪个?球员|哪个?演员|哪个?作家|哪个?歌手|叫什么名字"
        ),
    ),
    (
        QuestionKind.PLACE,
        re.compile(
            r"哪里|哪儿|何地|何处|什么地方|哪个?地方|哪[一两三四五几]?个?(?:国|国家|省|市|城市|县|州|地区|区域|洲|岛|山|河|湖|"
            r"海|村|镇|乡|街|城)|位于哪|在哪|哪[一两三四五几]?座"
        ),
    ),
    (
        QuestionKind.ORGANISATION,
        re.compile(
            r"哪[一两三四五几]?家|哪[一两三四五几]?[个所支]?(?:公司|机构|组织|单位|部门|团体|球队|队|大学|学校|学院|医院|银行|媒体|政党|党派|企业|"
            r"品牌|俱乐部|乐队|电视台|报社)|什么(?:公司|机构|组织|单位|部门|团体|球队|大学|学校|企业|品牌|媒体)"
        ),
    ),
    (
        QuestionKind.TITLE,
        re.compile(
            r"哪[一]?(?:部|本|首|篇|张)|什么(?:书|作品|电影|歌|歌曲|小说|专辑|节目|游戏|称号|头衔)|书名|片名"
        ),
    ),
    (
        QuestionKind.DEFINITION,
        re.compile(r"是什么|什么是|指什么|是指|什么意思|何谓|叫什么|称为什么|称作什么|简称"),
    ),
)

_YEAR = re.compile(r"(?<!\d)(\d{4})(?=\s*年)|(?<!\d)((?:1[5-9]|20)\d{2})(?!\d)")
_FIGURE = re.compile(r"\d+(?:\.\d+)?")
_MEASURE_AFTER = re.compile(r"(?:多少|" + ASKING_JI + r")([^\s\d的是有在了和与及吗呢?？,，.。、]{1,2})")
# A unit that opens with a magnitude or metric prefix runs on to its second character (万元, 公里, 平方米).
_UNIT_PREFIX = "万亿千百平公立"
_EDGE = "?？!！。.,，、 \t\n请问吗呢呀啊"
# 多少钱 asks for a sum of money, and no figure is followed by 钱: the unit that follows it is 元 (美元, 日元,
# 港元 end with it too), so 元 is the measure word the answer is looked for in.
_UNIT_OF = {"钱": "元"}


@dataclass(frozen=True)
class Question:
    """A question analysed once: the text, its matching form, what kind of answer it wants and its words."""

    text: str  # as asked
    normalized: str  # matching form (Simplified, lower case, half-width) of the analysed part
    kind: QuestionKind
    measure: str  # the measure word or unit asked for: 家 for 几家, 万元 for 多少万元; "" when none
    subjects: tuple[str, ...]  # places, organisations and people it names
    years: tuple[str, ...]  # four-digit years it names
    figures: tuple[str, ...]  # other numbers it names
    keywords: tuple[tuple[str, float], ...]  # content words with their rarity weight (idf), rarest first
    script: Script
    interrogative: str  # the question word where the answer would stand (什么, 哪一年, 几家); "" when none
    before: str  # the matching form before the interrogative, punctuation and 请问 trimmed
    after: str  # the matching form after it, trailing 吗/呢/? trimmed
    pairs: frozenset[str]  # its character pairs, none across an interrogative (see rag.text.question_pairs)
    chars: str  # its characters without interrogatives and punctuation, in order
    # Follow-up resolution and what retrieval reads (the fields above describe the turn as asked):
    standalone: str  # the turn folded after the previous user turn when it leans on it, else the turn
    focus: tuple[str, ...]  # the turn's content words, jieba search mode (what BM25 matches)
    context: tuple[str, ...]  # content words carried over from the previous turn (search mode)
    # the previous turn's keywords that the turn lacks (the answerer's windows weigh them too)
    context_keywords: tuple[str, ...]
    entities: tuple[str, ...]  # subjects documents are held to: the turn's, carried ones, known place stems

    @cached_property
    def words(self) -> tuple[str, ...]:
        """The keywords without their weights."""
        return tuple(w for w, _ in self.keywords)

    @cached_property
    def keywords_in_order(self) -> tuple[str, ...]:
        """The keywords in the order the question says them (neighbouring words form compounds)."""
        return tuple(sorted(self.words, key=self.normalized.find))

    @cached_property
    def terms(self) -> tuple[str, ...]:
        """What BM25 matches: the turn's words, then the carried ones."""
        return self.focus + tuple(w for w in self.context if w not in self.focus)

    @cached_property
    def standalone_normalized(self) -> str:
        """The standalone question's matching form."""
        if not self.is_follow_up and len(self.text) <= MAX_ANALYSED_CHARS:
            return self.normalized  # the same text, already in matching form
        return normalize(self.standalone)

    @cached_property
    def standalone_pairs(self) -> frozenset[str]:
        """The character pairs of the standalone question (what the ranking's second stage looks for)."""
        return frozenset(question_pairs(self.standalone))

    @cached_property
    def standalone_chars(self) -> str:
        """The standalone question's characters without interrogatives and punctuation, in order."""
        return question_chars(self.standalone)

    @cached_property
    def asks_who_asked(self) -> bool:
        """A question about a press conference's questioner (哪家媒体问了…)."""
        return bool(_ASKS_WHO_ASKED.search(self.standalone_normalized))

    @cached_property
    def asks_who_answered(self) -> bool:
        """A question about who replied to a question at a press conference (…的提问是谁回答的)."""
        return bool(_ASKS_WHO_ANSWERED.search(self.standalone_normalized))

    @property
    def asks_who(self) -> bool:
        """A person, or an organisation (哪个部门, 哪家媒体): at a press conference the speaker's label can be it."""
        return self.kind in (QuestionKind.PERSON, QuestionKind.ORGANISATION)

    @property
    def is_follow_up(self) -> bool:
        """Whether the turn was folded with the one before."""
        return self.standalone != self.text

    @cached_property
    def keyword_weight(self) -> float:
        """The summed weight of the keywords (the denominator of every weighted share)."""
        return sum(w for _, w in self.keywords)


@lru_cache(maxsize=1)
def _idf() -> tuple[dict[str, float], float]:
    """jieba's shipped idf table (fitted by jieba on its own corpus) and its median for unknown words."""
    import jieba.analyse

    freq, median = jieba.analyse.default_tfidf.idf_loader.get_idf()
    return freq, float(median)


@lru_cache(maxsize=65536)
def word_weight(word: str) -> float:
    """A word's rarity: jieba's idf, the median idf for a word the table lacks (as jieba's own TF-IDF)."""
    table, median = _idf()
    return float(table.get(word, median))


def question_kind(normalized: str) -> QuestionKind:
    """The kind of answer a question (in matching form) asks for, from its question words."""
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(normalized):
            return kind
    return QuestionKind.OTHER


def measure_word(normalized: str) -> str:
    """The measure word or unit after 几/多少 (几家 → 家, 多少万元 → 万元); "" when none is named."""
    span = _measure_span(normalized)
    return normalized[span[0] : span[1]] if span else ""


def asked_unit(measure: str) -> str:
    """The unit an answer states the measure asked for in (多少钱 → 元); the measure word itself otherwise."""
    return _UNIT_OF.get(measure, measure)


def _measure_span(normalized: str) -> tuple[int, int] | None:
    """Where the measure word or unit after 几/多少 stands; None when none is named."""
    m = _MEASURE_AFTER.search(normalized)
    if not m:
        return None
    tail = m.group(1)
    return m.start(1), m.start(1) + (len(tail) if tail[0] in _UNIT_PREFIX else 1)


def _years_and_figures(normalized: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    years = tuple(dict.fromkeys(a or b for a, b in _YEAR.findall(normalized)))
    figures = tuple(dict.fromkeys(f for f in _FIGURE.findall(normalized) if f not in years))
    return years, figures


def _around_interrogative(normalized: str) -> tuple[str, str, str]:
    """The first interrogative phrase and the text before and after it."""
    found = list(INTERROGATIVE.finditer(normalized))
    if not found:
        return "", normalized.strip(_EDGE), ""
    m = found[0]
    end = m.end()
    if m.group(0) in ("多少", "几"):
        end += len(measure_word(normalized[m.start() :]))
    before = normalized[: m.start()].lstrip(_EDGE).rstrip(" ")
    after = normalized[end:].rstrip(_EDGE).lstrip(" ")
    return normalized[m.start() : end], before, after


def subject_words(text: str) -> list[str]:
    """Places, organisations and names in a text (jieba POS tags and administrative suffixes)."""
    found: list[str] = []
    normalized = normalize(text)
    tagged = pseg.lcut(normalized)
    freq = jieba.dt.FREQ  # read after segmenting: jieba fills its dictionary on first use
    # jieba's HMM glues the measure word after 几/多少 to the next character and may tag the pair a name
    # (多少钱花在 → 钱花/nr): a word that starts inside the measure word and runs past it names no subject.
    measure_start, measure_end = _measure_span(normalized) or (-1, -1)
    at = 0
    for token, tag in tagged:
        start, at = at, at + len(token)
        if start <= measure_start < at and at > measure_end:
            continue
        if len(token) < 2 or token in STOP_WORDS:
            continue
        # Common words (城市, 地区, 小区) end like places but name no one place: the dictionary knows them well.
        if (tag in _ENTITY_TAGS or PLACE_SUFFIX.match(token)) and freq.get(token, 0) < COMMON_WORD:
            found.append(token)
    return list(dict.fromkeys(found))


def unglued(found: Sequence[str], subjects: Sequence[str], vocabulary: Mapping[str, float]) -> list[str]:
    """Keywords with jieba's wrong guesses taken apart: its HMM joins characters its dictionary cannot place
    into a new word (左云县城新修 → 左云县 / 城新修); a guess that neither the dictionary nor the index knows,
    and that names no subject, stands as its dictionary words (城 / 新 / 修), else it outweighs every real word."""
    freq = jieba.dt.FREQ
    out: list[str] = []
    for w in found:
        if len(w) >= 2 and w not in vocabulary and w not in freq and not any(w in s for s in subjects):
            out += [k for piece in jieba.lcut(w, HMM=False) for k in keywords(piece)]
        else:
            out.append(w)
    return list(dict.fromkeys(out))


def needs_history(question: str, entities: Sequence[str]) -> bool:
    """A follow-up leans on the previous turn: it opens with a pointing or comparing word, or it is a
    fragment that names no subject ("林木覆盖率呢?"). A complete new question stands alone."""
    q = normalize(question).strip().rstrip("?？!！。 ")
    if _ANAPHORA.match(q) or q.endswith("呢"):
        return True
    return not entities and len(keywords(q)) <= 2


# What an elliptical follow-up wraps around the thing it asks about instead (那…呢?, 那么…呢?).
_ELLIPSIS = re.compile(r"^(?:那么|那|其中|还有|另外)?(.+?)呢?$")
# An elliptical follow-up names a thing (林木覆盖率, 那2025年): a longer turn is a question of its own, and the
# search for where its phrase stands in the previous question costs its length squared.
MAX_ELLIPSIS_CHARS = 16


def elliptical_question(last: str, turn: str) -> str | None:
    """The previous question asked again of what an elliptical follow-up names instead ("林木覆盖率呢?" after
    "左权县森林覆盖率是多少?" → "左权县林木覆盖率是多少?"), in the turn's script; None when the turn asks a
    question of its own or shares no word's end or start with the previous question (人均呢? after …GDP是多少?).

    Chinese noun phrases end in their head, so the part replaced is the run of the previous question's jieba
    words that ends with the longest end of the turn's phrase it holds at a word's end (覆盖率; 企业 of
    生产企业 → 活性炭企业; 县 of 左云县 → 左权县), as long as the phrase; failing that, the one word about as
    long as the phrase that starts with its longest start (产值 → 产量); failing that, the previous question's
    one subject when the phrase is a subject (王永军 → 李征宇). The interrogative and its measure word are never
    replaced, and X的 stands for X."""
    turn, last = turn.strip().rstrip("?？!！。 "), last.strip()
    said = normalize(turn)
    m = _ELLIPSIS.match(said)
    if not m or INTERROGATIVE.search(said) or not m.group(1).strip() or len(said) > MAX_ELLIPSIS_CHARS:
        return None
    last = last[-MAX_ANALYSED_CHARS:]
    before = normalize(last)
    named = m.group(1).strip().removesuffix("的") or m.group(1).strip()
    where = _replaced(before, named) or _subject_replaced(before, named)
    if where is None or where[0] >= where[1]:
        return None
    a, b = where
    # originals where folding kept the length (it nearly always does), so 左雲縣的GDP is not shown as 左云县的gdp
    same = len(said) == len(turn) and len(before) == len(last)
    phrase = turn[m.start(1) : m.end(1)].strip() if same else m.group(1).strip()
    phrase = phrase.removesuffix("的") or phrase  # 左云县的呢?: 左云县's, of what the last turn asked
    whole = (last[:a] + phrase + last[b:]) if same else (before[:a] + phrase + before[b:])
    return to_script(whole, script_of(turn))


def _subject_replaced(before: str, phrase: str) -> tuple[int, int] | None:
    """Where the previous question's one subject stands when the phrase is a subject too (王永军呢? after
    李征宇担任什么职务?: another person asked the same of); None otherwise."""
    theirs = subject_words(before)
    if subject_words(phrase) != [phrase] or len(theirs) != 1:
        return None
    at = before.find(theirs[0])
    return (at, at + len(theirs[0])) if at >= 0 else None


def _replaced(before: str, phrase: str) -> tuple[int, int] | None:
    """Where in the previous question (matching form) the phrase stands in: elliptical_question's rule."""
    spans = [(a, b) for _, a, b in jieba.tokenize(before)]
    ends = {b for _, b in spans}
    # the interrogative and its measure word (多少个) stay: the phrase stands in for what they ask about
    asked = INTERROGATIVE.search(before)
    lo, hi = (asked.start(), asked.end() + len(measure_word(before[asked.start() :]))) if asked else (0, 0)

    def run(a: int, b: int) -> tuple[int, int]:
        """[a, b) widened to the words it touches, short of the interrogative phrase."""
        a, b = min(x for x, y in spans if y > a), max(y for x, y in spans if x < b)
        if asked and a < hi <= b:
            a = hi
        if asked and a < lo < b:
            b = lo
        return a, b

    for n in range(len(phrase), 0, -1):
        tail = phrase[-n:]
        at = [i + n for i in range(len(before)) if before.startswith(tail, i) and i + n in ends]
        if at:
            return run(max(0, at[0] - len(phrase)), at[0])
    for n in range(len(phrase), 0, -1):
        head = phrase[:n]
        # a start says less than a head: only one word about as long as the phrase (产量 for 产值) stands for it
        word = [
            (a, b)
            for a, b in spans
            if before.startswith(head, a) and abs((b - a) - len(phrase)) <= 1 and not (a < hi and b > lo)
        ]
        if word:
            return word[0]
    return None


def place_stems(focus: Sequence[str], entities: Sequence[str], vocabulary: Mapping[str, float]) -> list[str]:
    """Bare place stems among a question's words that the documents know with a suffix (左权 → 左权县)."""
    return [
        w
        for w in focus
        if len(w) >= 2
        and w not in entities
        and not any(w in e for e in entities)
        and jieba.dt.FREQ.get(w, 0) < COMMON_WORD  # 管理 + 局 is a word, but 管理 names no place
        and any(w + suffix in vocabulary for suffix in _STEM_SUFFIXES)
    ]


def analyse_question(
    text: str, history: History | None = None, vocabulary: Mapping[str, float] | None = None
) -> Question:
    """Analyse a question once: kind, measure word, subjects, years and figures, weighted keywords, script;
    folded after the last user turn of `history` when it leans on it; place stems the index's `vocabulary`
    (its words) knows with a suffix count as subjects."""
    part = text[-MAX_ANALYSED_CHARS:]
    normalized = normalize(part)
    subjects = subject_words(part)
    own = keywords(part)
    if vocabulary:
        own = unglued(own, subjects, vocabulary)
    ranked = sorted(((w, word_weight(w)) for w in own), key=lambda item: (-item[1], normalized.find(item[0])))
    years, figures = _years_and_figures(normalized)
    interrogative, before, after = _around_interrogative(normalized)
    focus = words(text)
    standalone, context, context_keywords, entities = text, [], [], list(subjects)
    previous = [h.get("content", "") for h in (history or []) if h.get("role", "user") == "user"]
    previous = [p for p in previous if p.strip() and p.strip() != text.strip()]
    if previous and needs_history(text, subjects):
        last = previous[-1]
        whole = elliptical_question(last, text)
        if whole is not None:  # "林木覆盖率呢?": the previous question, of the forest's other measure
            return replace(analyse_question(whole, None, vocabulary), text=text, standalone=whole)
        standalone = f"{last} {text}"
        context = [w for w in words(last) if w not in focus]
        entities += [e for e in subject_words(last) if e not in entities]
        asked = {w for w, _ in ranked}
        context_keywords = [w for w in keywords(last) if w not in asked]
    if vocabulary:
        entities += place_stems(focus, entities, vocabulary)
    return Question(
        text=text,
        normalized=normalized,
        kind=question_kind(normalized),
        measure=asked_unit(measure_word(normalized)),
        subjects=tuple(subjects),
        years=years,
        figures=figures,
        keywords=tuple(ranked[:MAX_KEYWORDS]),
        script="traditional" if script_of(part) == HANT else "simplified",
        interrogative=interrogative,
        before=before,
        after=after,
        pairs=frozenset(question_pairs(part)),
        chars=question_chars(part),
        standalone=standalone,
        focus=tuple(focus),
        context=tuple(context),
        context_keywords=tuple(context_keywords),
        entities=tuple(entities),
    )
