"""Frozen values that flow between stages: paragraph → passage → citation → answer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of a document, in reading order, with where it came from."""

    doc: str  # file name, e.g. "004_7b7eee9865cdd99f.txt"
    paragraph: int  # 1-based, reading order
    text: str  # original script, as in the source (page-break joins applied)
    section: str = ""  # nearest heading above it ("一、堅持做優做強企業…", "●有机农业提质增效")
    speaker: str = ""  # press-conference speaker line in force ("…副縣長、新聞發言人 高鵬")
    start: int = 0  # character span in the decoded source text
    end: int = 0
    page: int = 0  # 1-based page it starts on (PDF, scans); 0 for a format without pages
    page_breaks: tuple[int, ...] = ()  # offsets in text where a new page begins (a paragraph across pages)
    table: int = 0  # 1-based table number in the document when the paragraph is a table row; 0 otherwise
    row: int = 0  # 1-based data row of that table (a very wide row is several paragraphs with one row)
    ocr_confidence: float = 0.0  # the least sure OCR'd line in it, 0-1; 0.0 when read from a text layer

    def __post_init__(self) -> None:
        if not isinstance(self.page_breaks, tuple):  # read back from JSON as a list
            object.__setattr__(self, "page_breaks", tuple(self.page_breaks))


@dataclass(frozen=True)
class Passage:
    """A retrieved paragraph with its fused score (higher is better)."""

    doc: str
    paragraph: int
    text: str
    score: float
    section: str = ""
    speaker: str = ""
    dense: float = 0.0  # cosine similarity of the best embedded window
    lexical: float = 0.0  # BM25 score
    replies_to: str = ""  # at a press conference: the journalist's question this turn answers
    page: int = 0  # as in Paragraph: first page, page breaks inside text, table and row (0: none)
    page_breaks: tuple[int, ...] = ()
    table: int = 0
    row: int = 0


@dataclass(frozen=True)
class Citation:
    """A paragraph an answer leans on, with the sentence that supports the claim."""

    n: int  # the [n] marker in Answer.text
    doc: str
    paragraph: int
    text: str  # the whole paragraph, original script
    quote: str  # the supporting sentence, original script, a substring of text
    section: str = ""
    speaker: str = ""
    score: float = 0.0
    quote_start: int = 0  # offsets of quote inside text, for highlighting
    quote_end: int = 0
    answer_start: int = 0  # offsets of the short answer inside quote (equal when the quote has none)
    answer_end: int = 0
    page: int = 0  # 1-based page the quote starts on (PDF, scans); 0 for a format without pages
    page_end: int = 0  # page the quote ends on: after page when it runs across a page break
    table: int = 0  # 1-based table number when the paragraph is a table row; 0 otherwise
    row: int = 0  # 1-based data row of that table

    @classmethod
    def quoting(cls, n: int, passage: Passage, start: int, end: int) -> Citation:
        """Cite a retrieved passage, quoting passage.text[start:end]."""
        return cls(
            n=n,
            doc=passage.doc,
            paragraph=passage.paragraph,
            text=passage.text,
            quote=passage.text[start:end],
            section=passage.section,
            speaker=passage.speaker,
            score=passage.score,
            quote_start=start,
            quote_end=end,
            page=_page_at(passage, start),
            page_end=_page_at(passage, max(start, end - 1)),
            table=passage.table,
            row=passage.row,
        )


def _page_at(passage: Passage, offset: int) -> int:
    """The page that holds passage.text[offset] (0 when not paged)."""
    return passage.page + sum(1 for b in passage.page_breaks if b <= offset) if passage.page else 0


@dataclass(frozen=True)
class Answer:
    """A short answer with [n] markers, or found=False with a plain refusal."""

    question: str
    text: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)  # the closest paragraphs, shown even when not found
    answerer: str = "extractive"
    verified: bool | None = None  # set by the generative answerer's checks; None when not checked
    verification: list[str] = field(default_factory=list)  # reasons, one line each
    standalone_question: str = ""  # the question as understood after folding in the history
    short: str | None = None  # the answer span itself, in the question's script; None for a refusal
    # calibrated probability that `short` is right (F1 ≥ 0.5 against a gold answer whose figures it names)
    short_confidence: float = 0.0
    # calibrated probability that the answer is right (rag/refusal.py; for the LLM answerer, of the sentence it
    # cites; for a comparison, the product of its sides'); 0 when no candidate was found
    confidence: float = 0.0
    short_stated: bool = False  # short_confidence reached the threshold for stating `short` as the answer
    # What the fitted refusal reads besides the text (rag/refusal.py): the embedder's cosine of the question
    # with the quoted sentence and with the closest sentence of the leading passages (0 without a dense side).
    quote_similarity: float = 0.0
    best_similarity: float = 0.0
    # The cited paragraph's weighted share of the question's words minus the share the rules ask for
    # (rag/answer.py's coverage gate): below 0 only when the gate lets a shortfall through to the refusal.
    coverage_margin: float = 0.0


@dataclass(frozen=True)
class DocumentInfo:
    """One indexed document as the index lists it."""

    doc: str
    paragraphs: int
    sha256: str
    added_at: str  # ISO 8601, UTC
    chars: int = 0


@dataclass(frozen=True)
class Skipped:
    """A file that was not indexed and why."""

    path: str
    reason: str


@dataclass
class BuildReport:
    """What one build or update did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    paragraphs: int = 0
    embedded_chars: int = 0
    seconds: float = 0.0
    set_aside: str = ""  # the damaged live version a build replaced, renamed damaged-v-… and kept
    notes: list[str] = field(default_factory=list)  # waits, resumed or re-planned jobs, recoveries
