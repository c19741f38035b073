"""Extractive answers over ranked passages: pick the clause that answers, cite it, or say it is not there.

Pure: takes the analysed question, the ranked passages and word weights; returns an Answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import jieba.posseg as pseg

from rag.features.passage import holds
from rag.question import Question, QuestionKind
from rag.retrieval import is_questioner
from rag.text import HANS, ROMAN_NUMERALS, clauses, normalize, script_of, segmented, sentences, to_script
from rag.types import Answer, Citation, Passage

NOT_FOUND = {HANS: "文档中没有找到这个问题的答案。", "hant": "文件中沒有找到這個問題的答案。"}
MAX_ANSWER_CHARS = 80
# A second sentence of the same passage that scores within RUNNER_GAP of the best is given too, each part
# then at most PART_CHARS: when two sentences answer about equally well, showing both beats guessing.
RUNNER_GAP = 1.0
PART_CHARS = 70

# The window rules' numbers below are set by hand, not fitted: they decide which windows exist at all for the
# fitted models downstream (the sentence and span models re-read the cited paragraph; the refusal model can
# only refuse more, and rag/refusal.py says why the rules stay its precondition). How much each one matters is
# measured by evals/rules_sensitivity.py (evals/reports/rules_sensitivity.md): each value lowered and raised,
# answer accuracy, answered precision and refusals on the seed set and on CMRC 2018 / DRCD dev samples.
PASSAGES_READ = 3  # the leading passages the rules look into (the ranking's hit@3 is 0.99+ on the dev sets)
MIN_COVERAGE = 0.4  # weighted share of the question's words the cited paragraph must hold, or refuse
STRICT_COVERAGE = 0.5  # the same when a better-ranked passage was passed over for naming another subject
# How far below that gate a one-subject answer may fall and still go to the fitted refusal (rag/refusal.py),
# which reads the shortfall as its feature `coverage_margin`: 0 keeps the gate hard.
COVERAGE_ALLOWANCE = 0.0
PAIR_CREDIT = 0.5  # a longer word missing whole earns this times the share of its character pairs held
SPREAD_EXPONENT = 0.5  # a word in n of the paragraph's sentences weighs n ** -SPREAD_EXPONENT inside it
SUBJECT_SHARE = 0.3  # a subject word (place, name) inside its own document: held by every sentence alike
TOPIC_SHARE = 0.3  # a word the paragraph opens with, when choosing a window inside that paragraph
TOPIC_REACH = 4  # characters after the word's length within which the opening counts as naming it
TOPIC_MIN_SENTENCES = 3  # a paragraph of fewer sentences has no opening apart from its body
WINDOW_CLAUSES = 4  # clauses one window may join
HELD_GAIN = 4.0  # the window's weighted share of the question's words
SENTENCE_GAIN = 0.5  # the share held anywhere in the window's sentence
CLAUSE_COST = 0.15  # each clause joined beyond the first
RANK_COST = 0.8  # each rank the passage stands below the first (the ranking already weighs restatement)
ASKING_COST = 1.5  # a sentence that asks (a journalist's turn, a sentence ending in ?) ...
ASKING_GAIN = 1.0  # ... or, when the user asks who asked, what it gains
NUMBER_MISSING = -3.0  # a number asked, none in the window
MEASURE_FIT = 2.0  # a figure with the measure word asked (几家 → 14家)
NUMBER_PRESENT = 0.5  # a figure without that measure word
DATE_FIT = 1.5  # a date asked and one in the window
DATE_MISSING = -2.0  # a date asked, none in the window
PERSON_FIT = 1.0  # who asked and a person's name in the window (or a named speaker)

_NUMBER = re.compile(
    rf"[0-9０-９]+(?:[.,．][0-9０-９]+)*|[零〇一二两三四五六七八九十百千万亿半]{{1,6}}|[{ROMAN_NUMERALS}]"
)
_QUESTION_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DATE = re.compile(
    r"\d{1,4}\s*年|\d{1,2}\s*月|\d{1,2}\s*日|[零〇一二三四五六七八九十]{2,4}年|[甲乙丙丁戊己庚辛壬癸][子丑寅卯辰巳午未申酉戌亥]"
    r"|世纪|年代|年间|朝|时期|期间|[^\s，。]{1,3}纪"
)


def fits(question: Question, text: str) -> bool:
    """Whether a paragraph holds the kind of thing asked for (a figure with its measure word, a date)."""
    if question.kind is QuestionKind.NUMBER and question.measure:
        return _figure_with_measure(question, text)
    if question.kind is QuestionKind.DATE:
        return bool(_DATE.search(text))
    return False


def _figure_with_measure(question: Question, text: str) -> bool:
    """Whether a figure in the text is followed by the measure word the question asks in (几家 → 14家)."""
    return bool(re.search(rf"(?:{_NUMBER.pattern})\s*{re.escape(question.measure[:1])}", text))


def _matches(terms: Sequence[str], text: str) -> list[str]:
    return [t for t in terms if t in text]


@dataclass(frozen=True)
class Evidence:
    """One candidate window inside one passage."""

    rank: int
    passage: Passage
    start: int  # window inside passage.text
    end: int
    score: float  # ranks the windows of one passage
    coverage: (
        float  # weighted share of the question's words found in the paragraph (or its document's subject)
    )
    strength: float = 0.0  # ranks passages: the best window's score with the opening's words at full weight


def _has_person(text: str) -> bool:
    return any(tag in ("nr", "nrfg", "nrt") and len(w) >= 2 for w, tag in pseg.lcut(text))


def _kind_bonus(question: Question, window: str) -> float:
    if question.kind is QuestionKind.NUMBER:
        if not _NUMBER.search(window):
            return NUMBER_MISSING
        if question.measure and _figure_with_measure(question, window):
            return MEASURE_FIT
        return NUMBER_PRESENT
    if question.kind is QuestionKind.DATE:
        return DATE_FIT if _DATE.search(window) else DATE_MISSING
    if question.asks_who:
        # a speaker label stands in for a name in the window
        return PERSON_FIT if _has_person(window) else 0.0
    return 0.0


def coverage(
    question: Question, text: str, weight: Callable[[str], float], covered: Sequence[str] = ()
) -> float:
    """Weighted share of the question's own words that a text holds; words in `covered` count as held.

    A longer word missing whole earns half the share of its character pairs that the text holds
    (农村居民 against 城乡居民). Figures are left out: they are checked on their own, and a year that
    matches says nothing about whether the rest of the question does.
    """
    total = 0.0
    held = 0.0
    for t in question.keywords_in_order:
        if _QUESTION_NUMBER.fullmatch(t):
            continue
        w = weight(t)
        total += w
        if t in text or any(t in c for c in covered):
            held += w
        elif len(t) >= 3:
            pairs = [t[i : i + 2] for i in range(len(t) - 1)]
            held += PAIR_CREDIT * w * sum(1 for b in pairs if b in text) / len(pairs)
    return held / total if total else 1.0


def windows(
    passage: Passage,
    rank: int,
    query: Question,
    weight: Callable[[str], float],
    asks_about_questions: bool = False,
) -> list[Evidence]:
    """The best clause window of each sentence of one passage, best first: question words weighted by
    rarity, plus answer-type fit. Empty when the passage names a figure of the question it lacks.

    Subject words (places, names) are held by the whole document, so they weigh little inside it.
    """
    text = passage.text
    norm = normalize(text)
    whole = normalize(f"{passage.section} {passage.speaker} {passage.replies_to} ") + norm
    numbers = _QUESTION_NUMBER.findall(normalize(query.standalone))
    if any(n not in norm for n in numbers):  # the question names a year or figure this paragraph lacks
        return []
    para_coverage = coverage(query, whole, weight, query.entities)

    spans_of = sentences(text)
    # A word in every sentence (the article's subject) tells sentences apart less than one in a single
    # sentence: discount each word by how many of this paragraph's sentences hold it.
    own = query.keywords_in_order
    spread = {t: max(1, sum(1 for a, b in spans_of if t in norm[a:b])) for t in own}

    # A word the paragraph opens with names what it is about (黄鳍雀鲷为雀鲷科…, 阿马里洛（Amarillo）是…):
    # like a subject word it tells the paragraph's sentences apart poorly, so it weighs less when choosing a
    # window inside it — but not when comparing passages, where naming the topic is what counts.
    head_spans = clauses(text)
    head = norm[: head_spans[0][1]] if head_spans and len(spans_of) >= TOPIC_MIN_SENTENCES else ""
    topic = {t for t in own if head and t in head[: len(t) + TOPIC_REACH]}

    def plain(t: str) -> float:
        local = spread.get(t, 1) ** -SPREAD_EXPONENT
        return weight(t) * local * (SUBJECT_SHARE if any(t in e for e in query.entities) else 1.0)

    def inside(t: str) -> float:
        return plain(t) * (TOPIC_SHARE if t in topic and not any(t in e for e in query.entities) else 1.0)

    found, strength = _scan(passage, rank, query, inside, plain, para_coverage, asks_about_questions)
    if not found:
        return []
    if query.asks_who:
        # Names are looked for in the leading windows only (POS tagging every window would cost too much).
        speaker_named = bool(passage.speaker) and _has_person(normalize(passage.speaker))
        lead = []
        for ev in found[:2]:
            bonus = _kind_bonus(query, normalize(text[ev.start : ev.end]))
            if bonus == 0.0 and speaker_named:
                bonus = PERSON_FIT
            lead.append(replace(ev, score=ev.score + bonus))
        top_bonus = max(e.score for e in lead) - found[0].score
        found = sorted(lead, key=lambda e: -e.score) + found[2:]
        strength += max(0.0, top_bonus)
    return [replace(e, strength=strength) for e in found]


def _scan(
    passage: Passage,
    rank: int,
    query: Question,
    w: Callable[[str], float],
    w_passage: Callable[[str], float],
    para_coverage: float,
    asks_about_questions: bool,
) -> tuple[list[Evidence], float]:
    """The best clause window of each sentence under the word weights w, best first, and the best window
    score under w_passage (which ranks this passage against others)."""
    text = passage.text
    norm = normalize(text)
    own = query.keywords_in_order
    extra = query.context_keywords
    found: list[Evidence] = []
    strength = float("-inf")
    totals = [(f, sum(f(t) for t in own) or 1.0, sum(f(t) for t in extra)) for f in (w, w_passage)]
    # A journalist's turn at a press conference (compose passes it over unless the user asks who asked) or a
    # sentence ending in ? asks; the latter may quote a question in a story (说：「…乎？」), so it only costs.
    journalist = is_questioner(passage.speaker)
    for s_start, s_end in sentences(text):
        best: Evidence | None = None
        sentence_words = _matches(own, norm[s_start:s_end])
        asking = journalist or text[s_start:s_end].rstrip("”」』 ").endswith(("?", "？"))
        asking_cost = (-ASKING_GAIN if asks_about_questions else ASKING_COST) if asking else 0.0
        spans = [(s_start + a, s_start + b) for a, b in clauses(text[s_start:s_end])] or [(s_start, s_end)]
        for i in range(len(spans)):
            for j in range(i, min(len(spans), i + WINDOW_CLAUSES)):
                start, end = spans[i][0], spans[j][1]
                if end - start > MAX_ANSWER_CHARS and j > i:
                    break
                window = norm[start:end]
                held, carried = _matches(own, window), _matches(extra, window)
                # a lower-ranked passage must match clearly better (the ranking's second stage already
                # weighs how well each passage restates the question)
                common = -CLAUSE_COST * (j - i) - RANK_COST * rank - asking_cost
                if not query.asks_who:
                    common += _kind_bonus(query, window)
                score, passage_score = (
                    sum(f(t) for t in held) / own_total * HELD_GAIN
                    + SENTENCE_GAIN * sum(f(t) for t in sentence_words) / own_total
                    + (sum(f(t) for t in carried) / extra_total if extra_total else 0.0)
                    + common
                    for f, own_total, extra_total in totals
                )
                strength = max(strength, passage_score)
                if best is None or score > best.score:
                    best = Evidence(rank, passage, start, end, score, para_coverage)
        if best is not None:
            found.append(best)
    found.sort(key=lambda e: -e.score)
    return found, strength


def _detached_modifier(query: Question, ev: Evidence) -> bool:
    """Whether the answer gives another quantity than the one asked for: the question names it with a
    compound (有机作物种植面积), and the answer's window holds the head (作物, inside 农作物) while the
    modifier (有机) stands only elsewhere in the paragraph."""
    text = normalize(ev.passage.text)
    start, end = widened(ev.passage.text, ev.start, ev.end)
    window = text[start:end]
    asked = normalize(query.standalone)
    ks = query.keywords_in_order
    for a, b in zip(ks, ks[1:], strict=False):
        if min(len(a), len(b)) < 2 or _QUESTION_NUMBER.search(a + b):
            continue
        if any(a in e or b in e for e in query.entities):
            continue
        if a + b not in asked or a + b in text or a not in text or a in window or b not in window:
            continue
        if b not in segmented(window):  # the head only inside another word (作物 in 农作物), not on its own
            return True
    return False


def widened(text: str, start: int, end: int, limit: int = MAX_ANSWER_CHARS) -> tuple[int, int]:
    """The window grown by whole clauses on either side in turn, the one before first, while it stays
    within limit: the clause that matches the question often sits next to the one that answers it
    (由于…，X被鉴定为危桥 / X位于…)."""
    spans = clauses(text)
    take_before = True
    while True:
        after = next(((a, b) for a, b in spans if a >= end), None)
        before = next(((a, b) for a, b in reversed(spans) if b <= start), None)
        can_after = after is not None and after[1] - start <= limit
        can_before = before is not None and end - before[0] <= limit
        if before is not None and can_before and (take_before or not can_after):
            start = before[0]
        elif after is not None and can_after:
            end = after[1]
        else:
            return start, end
        take_before = not take_before


def _answer_text(
    ev: Evidence, question: Question, script: str, n: int, limit: int = MAX_ANSWER_CHARS, label: bool = True
) -> str:
    text = ev.passage.text
    start, end = widened(text, ev.start, ev.end, limit)
    body = text[start:end].rstrip("，,、；;：:")
    sentence_start = next((a for a, b in sentences(text) if a <= start < b), start)
    prefix = "…" if start > sentence_start else ""
    if label and question.asks_who and ev.passage.speaker and not _names_speaker(body, ev.passage.speaker):
        body = f"{ev.passage.speaker}：{body}"
        prefix = ""
    if script_of(text) != script:
        body = to_script(body, script)
    return f"{prefix}{body}[{n}]"


def _names_speaker(body: str, speaker: str) -> bool:
    name = speaker.split()[-1] if speaker.split() else speaker
    return normalize(name) in normalize(body)


def _citation(ev: Evidence, n: int) -> Citation:
    p = ev.passage
    start, end = ev.start, ev.end
    for a, b in sentences(p.text):  # quote the whole sentence that holds the answer
        if a <= ev.start < b:
            start, end = a, max(b, ev.end)
            break
    return Citation.quoting(n, p, start, end)


def compose(
    question: str,
    query: Question,
    passages: Sequence[Passage],
    weight: Callable[[str], float],
    doc_text: Mapping[str, str],
    prefer: tuple[str, int] | None = None,
    found_windows: dict[tuple[str, int], list[Evidence]] | None = None,
) -> Answer:
    """An extractive Answer from the top passages (ranked for the analysed question), or found=False when they
    do not hold one. A comparison's sides are each composed on their own (rag/short_answer.py joined_sides).

    prefer: (doc, paragraph) of a leading passage to answer from instead of the one the window scores pick;
    its answer passes the same gates, or it is a refusal.
    found_windows: the windows of each (doc, paragraph) found so far, filled in and reused, so that asking
    again of the same passages with another `prefer` does not scan them again.
    """
    script = script_of(question)
    shown: dict[tuple[str, int], Passage] = {}
    for p in passages:
        shown.setdefault((p.doc, p.paragraph), p)
    refusal = Answer(
        question=question,
        text=NOT_FOUND[script],
        found=False,
        passages=list(shown.values()),
        standalone_question=query.standalone,
    )
    asks_about_questions = query.asks_who_asked and not query.asks_who_answered
    memo = found_windows if found_windows is not None else {}
    per_passage: list[list[Evidence]] = []
    # rank of the first passage passed over for naming another subject or figure
    passed_over = PASSAGES_READ
    for rank, p in enumerate(passages[:PASSAGES_READ]):
        if is_questioner(p.speaker) and not asks_about_questions:
            continue  # a journalist's turn asks; it never answers
        scanned = (p.doc, p.paragraph)
        if scanned not in memo:
            memo[scanned] = (
                windows(p, rank, query, weight, asks_about_questions)
                if query.keywords and all(holds(doc_text.get(p.doc, ""), e) for e in query.entities)
                else []
            )
        found = memo[scanned]
        if found:
            per_passage.append(found)
        else:
            passed_over = min(passed_over, rank)
    lead = max(per_passage, key=lambda f: f[0].strength) if per_passage else []
    if prefer is not None:
        lead = next((f for f in per_passage if (f[0].passage.doc, f[0].passage.paragraph) == prefer), [])
    ev = lead[0] if lead else None
    # What the question asks about stands, better ranked, beside another subject or figure (the other
    # county's fact): a passage about the right subject must then match the question well.
    needed = STRICT_COVERAGE if ev is not None and passed_over < ev.rank else MIN_COVERAGE
    if (
        ev is None
        or ev.coverage < needed - COVERAGE_ALLOWANCE
        or _kind_bonus(query, normalize(ev.passage.text[ev.start : ev.end])) < 0
        or (query.kind is QuestionKind.NUMBER and _detached_modifier(query, ev))
    ):
        return refusal

    chosen, limit = [ev], MAX_ANSWER_CHARS
    if len(lead) > 1 and lead[1].score >= ev.score - RUNNER_GAP:
        # Two sentences of the passage answer about equally well: give both, in reading order, each shorter.
        first, second = sorted([ev, lead[1]], key=lambda e: e.start)
        text = first.passage.text
        a = widened(text, first.start, first.end, PART_CHARS)
        b = widened(text, second.start, second.end, PART_CHARS)
        if a[1] >= b[0]:  # the two parts meet: one passage span instead of overlapping parts
            chosen, limit = [replace(first, start=a[0], end=b[1])], b[1] - a[0]
        else:
            chosen, limit = [first, second], PART_CHARS
    citations: list[Citation] = []
    texts: list[str] = []
    for part in chosen:
        c = _citation(part, len(citations) + 1)
        key = (c.doc, c.paragraph, c.quote)
        n = next((x.n for x in citations if (x.doc, x.paragraph, x.quote) == key), len(citations) + 1)
        if n == len(citations) + 1:
            citations.append(c)
        # a second part of the same passage does not repeat the speaker's label
        same = any(o is not part and o.passage is part.passage and o.start < part.start for o in chosen)
        texts.append(_answer_text(part, query, script, n, limit, label=not same))
    return Answer(
        question=question,
        text="；".join(texts),
        found=True,
        citations=citations,
        passages=list(shown.values()),
        standalone_question=query.standalone,
        coverage_margin=ev.coverage - needed,
    )
