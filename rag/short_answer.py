"""The exact answer inside an extractive answer: the fitted span model (rag/scoring.py) reads the paragraph
the extractive answerer cites, and the Answer gains `short` (the span), the whole supporting sentence as its
quote with the span's offsets inside it, and the two calibrated probabilities.

Whether to answer: the extractive answerer's refusal rules (rag/answer.py) must answer, and the fitted refusal
model (rag/refusal.py, evals/fit_refusal.py: article-removed
questions as negatives) must give it a probability of being right at or above its threshold; that
probability is `Answer.confidence`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

from rag.answer import NOT_FOUND
from rag.features.span import FITTING_TYPES
from rag.question import Question, QuestionKind
from rag.refusal import Evidence, RefusalWeights, answer_probability, shipped_refusal_weights
from rag.retrieval import JOURNALIST, is_questioner
from rag.scoring import SpanAnswer, Weights, answer_span, load_weights
from rag.spans import SpanType, candidate_spans, matching_form
from rag.text import CITATION_MARKER, normalize, script_of, to_script
from rag.types import Answer, Citation, Passage

# The span model reads the one paragraph the extractive answerer chose, as it was fitted (rag/weights.json:
# options.distractors is false). Letting it choose among the 2 or 3 leading passages was measured and lost
# (`rag eval`, 400 CMRC 2018 + 400 DRCD dev questions and the seeds): answer accuracy 0.795 → 0.738 / 0.723
# (CMRC), 0.818 → 0.780 / 0.760 (DRCD), 0.817 → 0.746 / 0.739 (seeds), also with weights fitted with
# distractors; when it moved the citation the answer was mostly wrong, and the rules' paragraph lacked the
# gold answer while another of the three held it for only 2–6 answered questions in 400.
SPAN_PASSAGES = 1
# Whether the fitted refusal chooses among the answers from the leading passages (the rules' and each other
# passage's that passes the rules' gates on its own) instead of judging the rules' answer alone.
CHOOSE_AMONG_PASSAGES = True
# Set by hand, as a definition rather than a fit: a calibrated confidence below one half says the answer is
# more likely wrong than right, which the words people read (把握较低) must say.
AS_LIKELY_RIGHT_AS_WRONG = 0.5


@lru_cache(maxsize=1)
def shipped_weights() -> Weights:
    """The weights file that ships in the package, read once per process."""
    return load_weights()


def with_short_answer(
    answer: Answer,
    question: Question,
    weights: Weights | None = None,
    similarities: Mapping[tuple[int, int], float] | None = None,
) -> Answer:
    """The answer with its exact span: text = the stated short answer with [1] (when its confidence reaches
    the fitted threshold), then the whole supporting sentence; unchanged when it is a refusal, a comparison
    (several sources, one per side) or the model finds no candidate. similarities: the embedder's cosine of
    the question with each sentence of the cited paragraph, by (start, end)."""
    if not answer.found or len({(c.doc, c.paragraph) for c in answer.citations}) != 1:
        return answer
    cited = answer.citations[0]
    passage = next(
        (p for p in answer.passages if (p.doc, p.paragraph) == (cited.doc, cited.paragraph)),
        Passage(cited.doc, cited.paragraph, cited.text, cited.score, cited.section, cited.speaker),
    )
    found = answer_span(
        question,
        [(passage.text, passage.score)][:SPAN_PASSAGES],
        weights or shipped_weights(),
        [similarities or {}],
    )
    if found is None:
        return answer
    return _answer_from_span(answer, question, passage, found, cited, weights)


def with_fitted_refusal(
    answer: Answer, question: Question, doc_text: Mapping[str, str], weights: RefusalWeights | None = None
) -> Answer:
    """The answer with `confidence` set to the fitted probability that it is right, refused when that falls below
    the threshold chosen in cross-validation; a refusal by the rules keeps confidence 0 (the model was fitted on
    the answers the rules give)."""
    if not answer.found:
        return replace(answer, confidence=0.0)
    w = weights or shipped_refusal_weights()
    return _given_or_refused(answer, answer_probability(Evidence(answer, question, doc_text), w), w)


def with_fitted_choice(
    candidates: Sequence[Answer],
    question: Question,
    doc_text: Mapping[str, str],
    weights: RefusalWeights | None = None,
) -> Answer:
    """Of the candidate answers (the rules' first, then one from each other leading passage), the one the fitted
    refusal finds most probably right, given or refused as with_fitted_refusal decides; with CHOOSE_AMONG_PASSAGES
    off, the rules' answer alone."""
    w = weights or shipped_refusal_weights()
    found = [a for a in candidates if a.found]
    if not CHOOSE_AMONG_PASSAGES or not found:
        return with_fitted_refusal(candidates[0], question, doc_text, w)
    scored = [
        (answer_probability(Evidence(a, question, doc_text, tuple(o for o in found if o is not a)), w), -i, a)
        for i, a in enumerate(found)
    ]
    p, _, best = max(scored, key=lambda t: t[:2])  # the earlier candidate on a tie
    return _given_or_refused(best, p, w)


def _given_or_refused(answer: Answer, p: float, w: RefusalWeights) -> Answer:
    """The answer with confidence p when p reaches the threshold (its short answer stated only as stated_only_if_
    likely allows), else a refusal that keeps p."""
    if p >= w.threshold:
        return stated_only_if_likely(replace(answer, confidence=p))
    return Answer(
        question=answer.question,
        text=NOT_FOUND[script_of(answer.question)],
        found=False,
        passages=answer.passages,
        answerer=answer.answerer,
        standalone_question=answer.standalone_question,
        confidence=p,
    )


def stated_only_if_likely(answer: Answer) -> Answer:
    """The answer with its short answer no longer stated first when the answer is more likely wrong than right
    (confidence below AS_LIKELY_RIGHT_AS_WRONG): the sentence with the span highlighted, as below the stating
    threshold. A short answer stated as *the* answer claims more than the answer's own confidence; held out
    (evals/fit_refusal.py's rows), the stated short answers under one half were 33 % / 47 % right (CMRC / DRCD,
    80 answers), those above 93 % / 98 %."""
    if not answer.short_stated or answer.confidence >= AS_LIKELY_RIGHT_AS_WRONG or not answer.citations:
        return answer
    n = answer.citations[0].n
    stated = _stated_line(answer.short or "", n)
    text = answer.text[len(stated) :] + f"[{n}]" if answer.text.startswith(stated) else answer.text
    return replace(answer, text=text, short_stated=False)


def _stated_line(short: str, n: int) -> str:
    """The line a stated short answer opens the answer text with, before its sentence."""
    return f"{short}[{n}]\n"


def _answer_from_span(
    answer: Answer,
    question: Question,
    passage: Passage,
    found: SpanAnswer,
    cited: Citation,
    weights: Weights | None = None,
) -> Answer:
    script = script_of(question.text)
    start, end = found.sentence_span
    citation = replace(
        Citation.quoting(cited.n, passage, start, end),
        answer_start=found.span_start,
        answer_end=found.span_end,
    )
    sentence = to_script(passage.text[start:end].strip(), script)
    labelled = bool(passage.speaker) and normalize(answer.text).startswith(normalize(passage.speaker))
    if labelled:
        # the extractive answerer named who speaks (a press-conference turn asked about by who): keep it
        sentence = f"{to_script(passage.speaker, script)}：{sentence}"
    explanation = question.kind is QuestionKind.EXPLANATION
    short = None if explanation else to_script(found.short, script)
    short_confidence, stated = found.short_confidence, found.stated
    chosen = passage.text[start:end][found.span_start : found.span_end]
    speaker = speaker_answer(question, passage.speaker, found.span_type, chosen) if labelled else ""
    if speaker:
        # Who speaks is the answer; the turn being the right one is what the sentence probability says.
        short, short_confidence = to_script(speaker, script), found.sentence_probability
        stated = short_confidence >= (weights or shipped_weights()).short_threshold
        citation = replace(citation, answer_start=0, answer_end=0)  # the name is in the label, not the quote
    stated = short is not None and stated
    n = cited.n
    text = _stated_line(short or "", n) + sentence if stated else f"{sentence}[{n}]"
    return replace(
        answer,
        text=text,
        citations=[citation],
        short=short,
        short_confidence=0.0 if short is None else short_confidence,
        short_stated=stated,
        confidence=found.sentence_probability,  # with_fitted_refusal replaces it with the refusal probability
    )


def speaker_answer(question: Question, speaker: str, span_type: SpanType, span: str = "") -> str:
    """Who a press-conference turn's speaker label names, as the answer to a question asking who (or which
    outlet) when the chosen sentence offers no span of that kind: the name after the title (副局长 王永军),
    or a journalist's outlet (山西市场导报记者). "" otherwise; for a person also when the span the model chose
    names someone the question does not (高鹏同志 in the host's turn that names the officials), and when the
    question asks neither who replied nor anything the label says (县长 of 主持人 王瑶: 主持 would be)."""
    label = speaker.strip()
    if not question.asks_who or not label or span_type in FITTING_TYPES[question.kind]:
        return ""
    if question.kind is QuestionKind.PERSON and (
        _names_someone_else(question, span)
        or not (question.asks_who_answered or _label_says_what_is_asked(question, label))
    ):
        return ""
    if (
        question.kind is QuestionKind.ORGANISATION
        and not is_questioner(label)
        and not question.asks_who_answered
    ):
        return ""  # an official's name is no organisation: the question asks about what the turn says
    if is_questioner(label):
        return label[: -len(JOURNALIST)].strip(" ：:")  # 记者 is two characters in either script
    return label.split()[-1].strip(" ：:")


def _label_says_what_is_asked(question: Question, label: str) -> bool:
    """Whether the speaker label holds a word of the question other than its subjects (主持 in 主持人, 发言人)."""
    said = normalize(label)
    return any(k in said for k in question.keywords_in_order if not any(k in e for e in question.entities))


def _names_someone_else(question: Question, text: str) -> bool:
    """Whether the text holds a person's name the question does not say (jieba tags some places as names:
    左云县 asked about is no one else)."""
    norm = matching_form(text)
    people = (norm[c.start : c.end] for c in candidate_spans(text) if c.type is SpanType.PERSON)
    return any(p not in question.normalized for p in people)


CONFIDENCE_WORDS = {"high": "把握较高", "moderate": "把握一般", "low": "把握较低"}


def confidence_level(answer: Answer) -> str:
    """How sure the answer is, for people: "high" when its short answer is stated (its calibrated confidence
    reached the threshold fitted for 0.9 precision), "moderate" for another answer at least as likely right as
    wrong, "low" below that (the refusal's threshold, chosen for the precision of all answers together, lets
    through answers more often wrong than right), "" for a refusal."""
    if not answer.found:
        return ""
    if answer.short_stated:
        return "high"
    return "moderate" if answer.confidence >= AS_LIKELY_RIGHT_AS_WRONG else "low"


def confidence_words(answer: Answer) -> str:
    """The answer's confidence level in words (把握较高 / 把握一般 / 把握较低), in the question's script."""
    level = confidence_level(answer)
    return to_script(CONFIDENCE_WORDS[level], script_of(answer.question)) if level else ""


def _renumbered(text: str, shift: int) -> str:
    """The text with each [n] marker moved on by `shift`."""
    return CITATION_MARKER.sub(lambda m: f"[{int(m.group(1)) + shift}]", text)


def _side_label(question: Question, side: Answer, script: str) -> str:
    """What a comparison's side is headed with: its subject (左云县：); a side per document that the documents do
    not answer, its document's name (the sides it answers name their document in their citations)."""
    if len(question.entities) == 1:
        return to_script(f"{question.entities[0]}：", script)
    docs = {p.doc for p in side.passages}
    return f"{docs.pop()}：" if not side.found and len(docs) == 1 else ""


def joined_sides(
    question: str, sides: Sequence[tuple[Question, Answer]], weights: RefusalWeights | None = None
) -> Answer:
    """A comparison's answer from its sides, each answered and scored as a question of its own (one per subject or
    document): each given side's text under its subject, its markers numbered on, and a side refused by the
    documents said so. Its confidence is the product of the sides' (each right on its own; a refused side is right
    when its best candidate was not), and below the refusal threshold the whole is refused, keeping the product of
    the sides' probabilities; `short` is None (the exact answer of each side is in the text)."""
    w = weights or shipped_refusal_weights()
    script = script_of(question)
    passages: dict[tuple[str, int], Passage] = {}
    for _, side in sides:
        for p in side.passages:
            passages.setdefault((p.doc, p.paragraph), p)
    given = [(q, a) for q, a in sides if a.found]
    confidence = 1.0
    for _, a in sides:
        # a refused side claims the documents do not say: right unless its best candidate was
        confidence *= a.confidence if a.found or not given else 1.0 - a.confidence
    if not given or confidence < w.threshold:
        return Answer(
            question=question,
            text=NOT_FOUND[script],
            found=False,
            passages=list(passages.values()),
            standalone_question=question,
            confidence=confidence,
        )
    texts: list[str] = []
    citations: list[Citation] = []
    asked = normalize(question)
    named = [normalize(q.entities[0]) if len(q.entities) == 1 else "" for q, _ in sides]
    order = sorted(range(len(sides)), key=lambda i: asked.find(named[i]) if named[i] in asked else len(asked))
    for q, a in (sides[i] for i in order):
        label = _side_label(q, a, script)
        if not a.found:
            if label:
                texts.append(label + NOT_FOUND[script])
            continue
        shift = len(citations)
        citations.extend(replace(c, n=c.n + shift) for c in a.citations)
        texts.append(label + _renumbered(a.text, shift))
    return Answer(
        question=question,
        text="\n".join(texts),
        found=True,
        citations=citations,
        passages=list(passages.values()),
        standalone_question=question,
        confidence=confidence,
        quote_similarity=min(a.quote_similarity for _, a in given),
        best_similarity=min(a.best_similarity for _, a in given),
        coverage_margin=min(a.coverage_margin for _, a in given),
    )
