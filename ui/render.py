"""HTML for the chat: answers with linked [n] markers, source cards with the quoted sentence marked.

Pure functions over rag values; no Gradio, no engine. Everything is escaped here, and the HTML is
written without blank lines so the chat's Markdown renderer passes it through as one HTML block.
No emoji anywhere: a machine without an emoji font would show empty boxes.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.short_answer import confidence_level, confidence_words
from rag.store import SOURCE_SUFFIXES
from rag.types import Answer, BuildReport, Citation, DocumentInfo, Passage

if TYPE_CHECKING:
    from rag.writer import ScanJob

_MARKER_RE = re.compile(r"\[(\d{1,3})\]")
ANSWERER_LABELS = {"extractive": "抽取式（原文句子）", "llm": "大模型生成（经核验）"}
CLOSEST_PREVIEW_CHARS = 160
CLOSEST_SHOWN = 3
# A failed scan job's reason is shown on the status line, cut to about one line of the page.
SCAN_ERROR_CHARS = 120
# The 答案有误 button's id is its answer's id with this after it (HEAD's script strips it).
WRONG_SUFFIX = "-wrong"
WRONG_TRIGGER_ID = "rag-wrong-open"  # the page's hidden button that opens the 答案有误 panel


def _esc(text: str) -> str:
    """Escape for HTML and keep line breaks; `$` is escaped so no renderer reads it as LaTeX."""
    return html.escape(text).replace("\n", "<br>").replace("$", "&#36;")


def _one_line(parts: Iterable[str]) -> str:
    """Join HTML pieces with no newline, so Markdown sees a single HTML block."""
    return "".join(parts)


def anchor_id(answer_id: str, n: int) -> str:
    """The element id of source [n] of one answer; answer ids keep ids unique on the page."""
    return f"{answer_id}-src-{n}"


def link_markers(text: str, answer_id: str, valid: set[int]) -> str:
    """Escape the answer text and turn each [n] that names a citation into a link to its source card."""
    out: list[str] = []
    pos = 0
    for m in _MARKER_RE.finditer(text):
        out.append(_esc(text[pos : m.start()]))
        n = int(m.group(1))
        if n in valid:
            out.append(f'<a class="rag-cite" href="#{anchor_id(answer_id, n)}">[{n}]</a>')
        else:
            out.append(_esc(m.group(0)))
        pos = m.end()
    out.append(_esc(text[pos:]))
    return "".join(out)


def quote_span(citation: Citation) -> tuple[int, int] | None:
    """Where the quote lies in the paragraph: the given offsets when they match, else a search."""
    text, qs, qe = citation.text, citation.quote_start, citation.quote_end
    if 0 <= qs < qe <= len(text) and (not citation.quote or text[qs:qe] == citation.quote):
        return qs, qe
    if citation.quote:
        at = text.find(citation.quote)
        if at >= 0:
            return at, at + len(citation.quote)
    return None


def highlighted_paragraph(citation: Citation) -> str:
    """The paragraph as HTML with the supporting sentence inside <mark> and the short answer inside it
    in <strong class="rag-span">."""
    span = quote_span(citation)
    if span is None:
        return _esc(citation.text)
    qs, qe = span
    t = citation.text
    a, b = citation.answer_start, citation.answer_end
    if 0 <= a < b <= qe - qs:
        quote = t[qs:qe]
        inside = f'{_esc(quote[:a])}<strong class="rag-span">{_esc(quote[a:b])}</strong>{_esc(quote[b:])}'
    else:
        inside = _esc(t[qs:qe])
    return f"{_esc(t[:qs])}<mark>{inside}</mark>{_esc(t[qe:])}"


CONFIDENCE_CSS = {"high": "rag-sure", "moderate": "rag-unsure", "low": "rag-doubtful"}


def confidence_badge(answer: Answer) -> str:
    """The answer's confidence in words (rag.short_answer.confidence_words), its probabilities on hover."""
    if not answer.found or answer.answerer != "extractive":
        return ""
    words, css = confidence_words(answer), CONFIDENCE_CSS[confidence_level(answer)]
    title = f"答案可信度 {answer.confidence:.0%}"
    if answer.short is not None:
        title += f"，简短答案可信度 {answer.short_confidence:.0%}"
    return f'<span class="rag-confidence {css}" title="{_esc(title)}">{words}</span>'


def _page_table(page: int, page_end: int = 0, table: int = 0, row: int = 0) -> list[str]:
    """Where in a paged or tabled document: 第 3 页, 第 1–2 页 (a quote across a page break), 表 1 第 2 行."""
    bits = []
    if page:
        bits.append(f"第 {page} 页" if page_end in (0, page) else f"第 {page}–{page_end} 页")
    if table:
        bits.append(f"表 {table} 第 {row} 行")
    return bits


def _place(
    doc: str, paragraph: int, section: str, speaker: str, score: float, where: Sequence[str] = ()
) -> str:
    bits = [f'<span class="rag-doc">{_esc(doc)}</span>', f"第 {paragraph} 段", *where]
    if section:
        bits.append(f"章节：{_esc(section)}")
    if speaker:
        bits.append(f"发言人：{_esc(speaker)}")
    bits.append(f'<span class="rag-score">相关度 {score:.3f}</span>')
    return " · ".join(bits)


def source_link(doc: str, page: int, collection: str) -> str:
    """The citation card's link that opens a PDF (at its page) or an image of `collection` as its index
    stored it (the API's source route, relative to the page); "" for a document of another kind."""
    if Path(doc).suffix.lower() not in SOURCE_SUFFIXES:
        return ""
    href = (
        f"api/collections/{urllib.parse.quote(collection, safe='')}/documents/"
        f"{urllib.parse.quote(doc, safe='')}/source" + (f"#page={page}" if page else "")
    )
    return f' · <a class="rag-open" href="{html.escape(href)}" target="_blank" rel="noopener">打开原文</a>'


def citation_card(citation: Citation, answer_id: str, collection: str) -> str:
    """One source: where it is (a PDF or image with a link to its stored copy in `collection`, the one
    the answer came from), and the paragraph with the quote marked."""
    where = _page_table(citation.page, citation.page_end, citation.table, citation.row)
    head = _place(citation.doc, citation.paragraph, citation.section, citation.speaker, citation.score, where)
    head += source_link(citation.doc, citation.page, collection)
    return _one_line(
        [
            f'<div class="rag-source" id="{anchor_id(answer_id, citation.n)}">',
            f'<div class="rag-source-head"><span class="rag-n">[{citation.n}]</span> {head}</div>',
            f'<div class="rag-source-text">{highlighted_paragraph(citation)}</div>',
            "</div>",
        ]
    )


def passage_card(passage: Passage) -> str:
    """A nearby paragraph shown for reference only (no quote, shortened)."""
    where = _page_table(passage.page, 0, passage.table, passage.row)
    head = _place(passage.doc, passage.paragraph, passage.section, passage.speaker, passage.score, where)
    text = passage.text
    if len(text) > CLOSEST_PREVIEW_CHARS:
        text = text[:CLOSEST_PREVIEW_CHARS] + "…"
    return _one_line(
        [
            '<div class="rag-source rag-closest-item">',
            f'<div class="rag-source-head">{head}</div>',
            f'<div class="rag-source-text">{_esc(text)}</div>',
            "</div>",
        ]
    )


def verification_html(answer: Answer) -> str:
    """Whether a generated answer passed its checks, and why; empty when it was not checked."""
    if answer.verified is None:
        return ""
    cls, label = (
        ("rag-verified", "已核验：答案与引用原文一致")
        if answer.verified
        else ("rag-unverified", "未通过核验")
    )
    reasons = "".join(f"<li>{_esc(r)}</li>" for r in answer.verification)
    return _one_line(
        [
            f'<div class="rag-verify {cls}"><div>{label}</div>',
            f"<ul>{reasons}</ul>" if reasons else "",
            "</div>",
        ]
    )


def answer_text(answer: Answer) -> str:
    """The answer as plain text, for the clipboard: its text, then each source with its quoted sentence."""
    lines = [answer.text]
    if answer.found and answer.citations:
        lines += ["", "来源："]
        for c in answer.citations:
            where = " ".join(
                [f"{c.doc} 第 {c.paragraph} 段", *_page_table(c.page, c.page_end, c.table, c.row)]
            )
            where += f"（{c.section}）" if c.section else ""
            span = quote_span(c)
            quoted = c.text[span[0] : span[1]] if span else c.text
            lines.append(f"[{c.n}] {where}：{quoted}")
    return "\n".join(lines)


def copy_button(text: str) -> str:
    """A button that puts `text` on the clipboard (HEAD's script does the copying), with the text beside it
    unseen, one element per line: the chat's sanitiser drops data-* attributes and the newlines in them."""
    lines = "".join(f"<div>{_esc(line)}</div>" for line in text.split("\n"))
    return (
        '<button type="button" class="rag-copy" title="复制回答和出处（纯文本）">复制</button>'
        f'<div class="rag-copy-text">{lines}</div>'
    )


def wrong_button(answer_id: str) -> str:
    """The "答案有误" button of one answer: HEAD's script hands the answer id (from the button's own id, which
    the chat's sanitiser keeps) to the page's hidden feedback trigger."""
    return (
        f'<button type="button" class="rag-wrong" id="{wrong_button_id(answer_id)}" '
        'title="这个回答不对：标记出来，可以补充正确答案">答案有误</button>'
    )


def wrong_button_id(answer_id: str) -> str:
    return f"{answer_id}{WRONG_SUFFIX}"


def feedback_prompt(question: str) -> str:
    """The 答案有误 panel's line: which question's answer is being marked."""
    return f"把这个问题的回答标为有误：{_esc(question)}"


def answer_html(answer: Answer, answer_id: str, *, collection: str) -> str:
    """A finished answer from `collection`: text with linked markers, verification, then its sources (or
    the closest paragraphs)."""
    answerer = ANSWERER_LABELS.get(answer.answerer, answer.answerer)
    buttons = f"{copy_button(answer_text(answer))} {wrong_button(answer_id)}"
    meta = f'<div class="rag-meta">回答方式：{_esc(answerer)} {buttons}</div>'
    standalone = answer.standalone_question
    if standalone and standalone.strip() != answer.question.strip():
        # a follow-up: how it was read with the turn before (林木覆盖率呢? → 左权县林木覆盖率是多少?)
        meta = f'<div class="rag-meta">结合上文理解为：{_esc(standalone)}</div>' + meta
    if answer.found:
        valid = {c.n for c in answer.citations}
        linked = link_markers(answer.text, answer_id, valid).replace("\n", "<br>")
        body = f'<div class="rag-answer" id="{answer_id}">{confidence_badge(answer)}{linked}</div>'
        cards = "".join(citation_card(c, answer_id, collection) for c in answer.citations)
        sources = (
            f'<div class="rag-sources"><div class="rag-sources-title">来源（{len(answer.citations)}）</div>{cards}</div>'
            if answer.citations
            else ""
        )
    else:
        body = _one_line(
            [
                f'<div class="rag-answer rag-notfound" id="{answer_id}">',
                '<div class="rag-notfound-badge">文档中没有找到答案</div>',
                f"<div>{_esc(answer.text)}</div>",
                "</div>",
            ]
        )
        closest = answer.passages[:CLOSEST_SHOWN]
        cards = "".join(passage_card(p) for p in closest)
        sources = (
            '<div class="rag-sources rag-closest"><div class="rag-sources-title">'
            f"最接近的 {len(closest)} 个段落（仅供参考，不足以回答这个问题）</div>{cards}</div>"
            if answer.passages
            else ""
        )
    return _one_line([body, verification_html(answer), sources, meta])


def streaming_html(partial: str) -> str:
    """The answer while it streams in: plain escaped text and a cursor."""
    return f'<div class="rag-answer rag-streaming">{_esc(partial)}<span class="rag-cursor">▌</span></div>'


def waiting_html() -> str:
    """A question sent while another of the same conversation is being answered."""
    return '<div class="rag-answer rag-streaming rag-waiting">等上一个问题回答完，再回答这一个…</div>'


def notice_html(message: str) -> str:
    """A message about the question itself (too long, empty), not an answer."""
    return f'<div class="rag-notice">{_esc(message)}</div>'


def format_added_at(added_at: str) -> str:
    """ISO 8601 UTC → 'YYYY-MM-DD HH:MM UTC' (the input unchanged when it does not parse)."""
    m = re.match(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})", added_at)
    return f"{m.group(1)} {m.group(2)} UTC" if m else added_at


def document_rows(docs: Sequence[DocumentInfo]) -> list[list[str | int]]:
    """Rows of the documents table: name, paragraphs, when added."""
    return [[d.doc, d.paragraphs, format_added_at(d.added_at)] for d in sorted(docs, key=lambda d: d.doc)]


def status_markdown(docs: Sequence[DocumentInfo], index_dir: str, scans: str = "") -> str:
    """The readiness line under the page title, with the scanned uploads being read (scan_progress) under it."""
    paragraphs = sum(d.paragraphs for d in docs)
    ready = f"索引已就绪：{len(docs)} 个文档，{paragraphs} 个段落（`{index_dir}`）"
    return f"{ready}\n\n{scans}" if scans else ready


def scan_progress(jobs: Sequence[ScanJob]) -> str:
    """How far the background reading (OCR) of scanned uploads got, one clause per job not done yet:
    等待识别, 识别中 with the page being read, 正在加入索引, or why it stopped; "" when none is left."""
    clauses = []
    for job in jobs:
        names = "、".join(f"`{n}`" for n in job.documents)
        total = job.pages_total
        if job.state == "queued":
            clauses.append(f"等待识别：{names}（{total} 页）")
        elif job.state == "ocr":
            clauses.append(f"识别中：{names} 第 {min(job.pages_done + 1, total)}/{total} 页")
        elif job.state == "indexing":
            clauses.append(f"识别完成，正在加入索引：{names}")
        elif job.state == "failed":
            error = job.error if len(job.error) <= SCAN_ERROR_CHARS else job.error[:SCAN_ERROR_CHARS] + "…"
            clauses.append(f"识别没有完成：{names}（{_esc(error)}）")
    return "；".join(clauses)


def report_markdown(report: BuildReport | None, rejected: Sequence[tuple[str, str]]) -> str:
    """What an upload or removal did, in Chinese, one line per kind of outcome."""
    lines: list[str] = []
    for name, reason in rejected:
        lines.append(f"- 未接收 `{name}`：{reason}")
    if report is not None:
        for label, names in (
            ("已添加", report.added),
            ("已更新", report.updated),
            ("内容未变", report.unchanged),
            ("已删除", report.removed),
        ):
            lines.extend(f"- {label} `{n}`" for n in names)
        lines.extend(f"- 未能索引 `{s.path}`：{s.reason}" for s in report.skipped)
    return "\n".join(lines) if lines else "没有变化。"


def confirm_remove_markdown(name: str) -> str:
    """The question asked before a document is removed."""
    return f"确定要从索引中删除 `{name}` 吗？删除后要重新上传才能再问到它。"


CSS = """
.rag-answer { line-height: 1.7; }
.rag-cite { text-decoration: none; font-weight: 600; padding: 0 1px; color: var(--color-accent); }
.rag-notfound { border-left: 4px solid #d97706; background: rgba(217,119,6,0.08); padding: 6px 10px; border-radius: 4px; }
.rag-notfound-badge { font-weight: 600; color: #b45309; margin-bottom: 4px; }
.rag-confidence { font-size: 0.8em; border-radius: 4px; padding: 0 4px; margin-right: 6px; }
.rag-sure { background: #dcfce7; color: #166534; }
.rag-unsure { background: #fef3c7; color: #92400e; }
.rag-doubtful { background: #fee2e2; color: #991b1b; }
.rag-span { background: #fde68a; }
.rag-notice { border-left: 4px solid #dc2626; background: rgba(220,38,38,0.08); padding: 6px 10px; border-radius: 4px; }
.rag-sources { margin-top: 10px; border-top: 1px solid rgba(128,128,128,0.3); padding-top: 6px; }
.rag-sources-title { font-weight: 600; font-size: 0.9em; margin-bottom: 4px; }
.rag-closest .rag-sources-title { color: #b45309; }
.rag-source { margin: 6px 0; padding: 6px 8px; border-radius: 6px; background: rgba(128,128,128,0.08); font-size: 0.92em; }
.rag-source:target { outline: 2px solid #2563eb; }
.rag-source-head { font-size: 0.85em; opacity: 0.85; margin-bottom: 3px; }
.rag-source-text { max-height: 14em; overflow-y: auto; }
.rag-source-text mark { background: #fde68a; color: inherit; padding: 0 1px; }
.rag-n { font-weight: 700; }
.rag-doc { font-family: monospace; }
.rag-meta { font-size: 0.8em; opacity: 0.7; margin-top: 6px; }
.rag-verify { margin-top: 6px; font-size: 0.9em; }
.rag-verified { color: #15803d; }
.rag-unverified { color: #b45309; }
.rag-cursor { opacity: 0.6; }
.rag-waiting { opacity: 0.7; font-style: italic; }
.rag-copy-text { display: none; }
.rag-wrong { margin-left: 4px; padding: 0 8px; font-size: 1em; border: 1px solid rgba(128,128,128,0.5); border-radius: 4px; background: transparent; color: inherit; cursor: pointer; }
.rag-copy { margin-left: 8px; padding: 0 8px; font-size: 1em; border: 1px solid rgba(128,128,128,0.5); border-radius: 4px; background: transparent; color: inherit; cursor: pointer; }
/* The chat's label and buttons get their own row above the messages, so scrolled text never runs under them. */
#rag-chat > .wrapper { display: flex; flex-direction: column; }
#rag-chat > .wrapper > label { position: static; flex: none; align-self: flex-start; margin: var(--block-label-margin); }
#rag-chat > .wrapper > .bubble-wrap { flex: 1 1 auto; min-height: 0; height: auto; padding-top: var(--spacing-md); }
/* Long file names and dates wrap inside their cells: the table fits a phone's width. */
#rag-docs th, #rag-docs td, #rag-docs .cell-wrap { white-space: normal; overflow-wrap: anywhere; }
"""

# Copies an answer's plain text (the hidden .rag-copy-text beside its button, a line per element) when the
# button is pressed. The clipboard API needs a secure context (https or localhost); elsewhere the older
# execCommand("copy") does it. "答案有误" leaves its answer's id in window.ragWrongAnswer and presses the
# page's hidden trigger, whose event reads it. Gradio inserts the head twice; the flag keeps one listener.
HEAD = """<script>
if (!window.ragCopyInstalled) {
  window.ragCopyInstalled = true;
  // Capture phase: the copy happens even if a handler of the chat stops the click on its way up.
  document.addEventListener("click", (event) => {
    const wrong = event.target.closest ? event.target.closest(".rag-wrong") : null;
    if (wrong) {
      window.ragWrongAnswer = wrong.id.slice(0, -"WRONG_SUFFIX".length);
      const trigger = document.getElementById("WRONG_TRIGGER_ID");
      if (trigger) trigger.click();
      return;
    }
    const button = event.target.closest ? event.target.closest(".rag-copy") : null;
    if (!button) return;
    const holder = button.parentElement ? button.parentElement.querySelector(".rag-copy-text") : null;
    const text = holder ? [...holder.children].map((line) => line.textContent).join("\\n") : "";
    const done = () => {
      button.textContent = "已复制";
      setTimeout(() => { button.textContent = "复制"; }, 1500);
    };
    const fallback = () => {
      const area = document.createElement("textarea");
      area.value = text;
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      if (ok) done();
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }, true);
}
</script>""".replace("WRONG_SUFFIX", WRONG_SUFFIX).replace("WRONG_TRIGGER_ID", WRONG_TRIGGER_ID)
