"""The only module that reads document files: bytes → text → paragraphs with section and speaker.

Formats: .txt, .md, .html/.htm, .docx, .pdf. Encodings are detected (BOM, strict UTF-8, GB18030 or Big5
by which reads as Chinese words, then charset-normalizer for UTF-16 and the rest); text that decodes to
mojibake is refused with how it was garbled, found by undoing the misreading (see misreading_of).
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jieba
from bs4 import BeautifulSoup
from bs4.builder import HTMLTreeBuilder
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

from rag.errors import DocumentError
from rag.text import to_simplified
from rag.types import Paragraph

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm"}
SUFFIXES = TEXT_SUFFIXES | {".docx", ".pdf"}
MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Line:
    """A source line with its character span and what the format says it is."""

    text: str
    start: int
    end: int
    heading: bool = False  # the format marks it as a heading (Markdown #, HTML h1-h6, docx Heading style)
    blank_before: bool = False


# ---------------------------------------------------------------- decoding

MAX_GARBLED_SHARE = 0.02  # a stray symbol passes, a garbled passage does not
# Chinese prose: of the 1848 CMRC and DRCD dev contexts one has 0.25 of its characters in words, the rest
# 0.46-0.90; the same contexts garbled every way at most 0.09 (evals/mojibake_check.py --shares).
PROSE_WORD_SHARE = 0.3
# Undoing a misreading must put this much more of a text into words. The dev contexts undone any wrong way
# reach 0.12 at most; 99 % of their mojibake undone reaches 0.29, Big5 read as GBK only 0.13 (it loses
# bytes; their U+FFFD are then counted as garbled characters) (evals/mojibake_check.py --shares).
MISREAD_GAIN = 0.2
MISREAD_UNENCODABLE = 0.1  # a text the wrong codec cannot write back was not made by that codec
LOST_SHARE = 0.5  # undone text mostly U+FFFD that were in the bytes: text lost once already, then misread
CHUNK_CHARS = 200  # visible characters judged together: about a paragraph, enough for a word share
_HAN_OR_LOST = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f\ufffd]")
_LOST = "\ufffd"  # what a decoder writes for bytes it cannot decode


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chinese_word_share(text: str) -> float:
    """The share of text's Chinese characters (and U+FFFD) inside words of two or more characters of jieba's
    dictionary, in Simplified form: most of prose (左云县经济社会发展 → 1.0), none of mojibake, whose
    characters are real but follow each other at random (宸︿簯鍘跨粡娴 → 0.0)."""
    chars = in_words = 0
    for word in jieba.cut(to_simplified(text), HMM=False):  # no HMM: it would glue unknown characters
        n = len(_HAN_OR_LOST.findall(word))
        chars += n
        if n > 1 and jieba.get_FREQ(word):
            in_words += n
    return in_words / chars if chars else 0.0


@dataclass(frozen=True)
class Misreading:
    """Bytes written in one encoding and decoded as another: one way Chinese text turns into mojibake."""

    written: str
    read_as: str
    label: str

    def undo(self, text: str) -> tuple[str, int] | None:
        """The text re-encoded as it was wrongly read and decoded as it was written, with how many U+FFFD
        the bytes held themselves (text lost before the misreading); None when the text holds characters
        the wrong codec cannot write (this misreading did not make it)."""
        lost_bytes = _LOST.encode(self.written, errors="ignore")
        parts: list[str] = []
        unencodable = lost = 0
        for piece in text.split(_LOST):  # bytes the wrong decoder could not decode: their content is gone
            try:
                data = piece.encode(self.read_as)
            except UnicodeEncodeError:
                encoded = [_encoded(c, self.read_as) for c in piece]
                unencodable += encoded.count(b"")
                data = b"".join(encoded)
            lost += data.count(lost_bytes) if lost_bytes else 0
            parts.append(data.decode(self.written, errors="replace"))
        if unencodable > MISREAD_UNENCODABLE * sum(1 for c in text if not c.isspace()):
            return None
        return _LOST.join(parts), lost


def _encoded(char: str, codec: str) -> bytes:
    try:
        return char.encode(codec)
    except UnicodeEncodeError:
        return b""


MISREADINGS = (
    Misreading("utf-8", "gb18030", "UTF-8 text decoded as GBK"),
    Misreading("utf-8", "big5", "UTF-8 text decoded as Big5"),
    Misreading("gb18030", "big5", "GBK text decoded as Big5"),
    Misreading("big5", "gb18030", "Big5 text decoded as GBK"),
)


def misreading_of(text: str) -> Misreading | None:
    """The wrong decoding that turned Chinese into this text, or None when the text reads as itself.

    Undoing a misreading (re-encoding the text as it was wrongly read, decoding the bytes as they were
    written) turns its mojibake back into Chinese with far more of it in dictionary words, or into U+FFFD
    that the bytes held (锟斤拷 is the UTF-8 bytes of U+FFFD decoded as GBK). Clean text undone the same
    way turns into mojibake instead, so no list of suspicious strings is needed.
    """
    share = chinese_word_share(text)
    if share >= PROSE_WORD_SHARE:
        return None
    for misreading in MISREADINGS:
        undone = misreading.undo(text)
        if undone is None:
            continue
        repaired, lost = undone
        if lost >= LOST_SHARE * len(_HAN_OR_LOST.findall(repaired)) > 0:
            return misreading
        if chinese_word_share(repaired) >= share + MISREAD_GAIN:
            return misreading
    return None


def _chunks(text: str) -> list[str]:
    """Runs of whole lines of at least CHUNK_CHARS visible characters (the last may be shorter)."""
    chunks: list[str] = []
    lines: list[str] = []
    size = 0
    for line in text.split("\n"):
        lines.append(line)
        size += sum(1 for c in line if not c.isspace())
        if size >= CHUNK_CHARS:
            chunks.append("\n".join(lines))
            lines, size = [], 0
    if size:
        chunks.append("\n".join(lines))
    return chunks


def decode(data: bytes, name: str = "<bytes>") -> str:
    """Decode document bytes, or raise DocumentError saying why the text cannot be trusted."""
    if not data.strip():
        raise DocumentError(name, "the file is empty")
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return _checked(data.decode(codec, errors="replace"), name)
    try:
        return _checked(data.decode("utf-8"), name)
    except UnicodeDecodeError:
        pass
    except DocumentError:
        # Short GBK or Big5 text can be valid UTF-8 too (谢谢! in GBK reads лл!): its own reading wins then.
        prose = [r for r in _chinese_readings(data) if r[0] >= PROSE_WORD_SHARE]
        if not prose:
            raise
        return _checked(prose[0][1], name, detected=prose[0][2])
    readings = _chinese_readings(data)
    if readings and readings[0][0] >= PROSE_WORD_SHARE:
        return _checked(readings[0][1], name, detected=readings[0][2])
    import charset_normalizer

    best = charset_normalizer.from_bytes(
        data, cp_isolation=["gb18030", "big5", "utf_16", "utf_16_le", "utf_16_be", "cp1252", "latin_1"]
    ).best()
    if best is None:
        garbled = _misread_reason(readings[0][1]) if readings else None  # mojibake saved as GBK or Big5
        raise DocumentError(
            name, garbled or "the encoding could not be detected; save it as UTF-8 and add it again"
        )
    if best.encoding == "gb2312" or best.encoding == "gbk":  # GB18030 is the superset; never lose characters
        text = data.decode("gb18030", errors="replace")
    else:
        text = str(best)
    return _checked(text, name, detected=best.encoding)


def _chinese_readings(data: bytes) -> list[tuple[float, str, str]]:
    """(word share, text, codec) of the bytes decoded as GB18030 and as Big5 where they decode without error,
    best Chinese first: the same bytes often decode both ways, and the wrong way is mojibake."""
    readings: list[tuple[float, str, str]] = []
    for codec in ("gb18030", "big5hkscs"):  # Big5-HKSCS: Big5 with the Hong Kong characters
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        readings.append((chinese_word_share(text), text, codec))
    return sorted(readings, key=lambda r: -r[0])


def _misread_reason(text: str) -> str | None:
    """Why text is refused as Chinese misread as another encoding (see misreading_of), or None."""
    visible = sum(1 for c in text if not c.isspace())
    misread = 0
    first: tuple[Misreading, str] | None = None
    for chunk in _chunks(text):
        misreading = misreading_of(chunk)
        if misreading is not None:
            misread += sum(1 for c in chunk if not c.isspace())
            first = first or (misreading, chunk)
    if first is None or misread <= MAX_GARBLED_SHARE * visible:
        return None
    sample = "".join(first[1].split())[:12]
    return (
        f"garbled text: it reads as {first[0].label} ({misread} of {visible} characters, such as {sample!r}); "
        "open the original file, save it as UTF-8 and add it again"
    )


def _checked(text: str, name: str, detected: str = "utf-8") -> str:
    """Refuse text that looks like mojibake: Chinese misread as another encoding, replacement characters,
    Latin-1 soup, control characters."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        raise DocumentError(name, "the file holds no text")
    reason = _misread_reason(text)
    if reason is not None:
        raise DocumentError(name, reason)
    bad = sum(1 for c in visible if c == _LOST or _is_mojibake_char(c))
    if bad / len(visible) > MAX_GARBLED_SHARE:
        raise DocumentError(
            name,
            f"decoding as {detected} gives garbled text ({bad} of {len(visible)} characters); "
            "save it as UTF-8 and add it again",
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_mojibake_char(c: str) -> bool:
    code = ord(c)
    if 0x80 <= code <= 0xFF and c not in "·×÷°±²³µ¼½¾":  # Latin-1 supplement: GBK/UTF-8 read as Latin-1
        return True
    category = unicodedata.category(c)
    return category in ("Co", "Cs", "Cn") or (category == "Cc" and c not in "\t\n\r\f")


# ---------------------------------------------------------------- formats → lines


def lines_from_text(text: str) -> list[Line]:
    out: list[Line] = []
    pos = 0
    blank = False
    for raw in text.split("\n"):
        start, end = pos, pos + len(raw)
        pos = end + 1
        stripped = raw.strip()
        if not stripped:
            blank = True
            continue
        offset = raw.index(stripped[0])
        out.append(Line(stripped, start + offset, start + offset + len(stripped), blank_before=blank))
        blank = False
    return out


_MD_HEADING = re.compile(r"^#{1,6}\s+")
_MD_INLINE = re.compile(r"(\*\*|__|`|~~)|!?\[([^\]]*)\]\([^)]*\)")


def lines_from_markdown(text: str) -> list[Line]:
    out: list[Line] = []
    for line in lines_from_text(text):
        body = line.text
        heading = bool(_MD_HEADING.match(body))
        body = _MD_HEADING.sub("", body)
        body = re.sub(r"^(?:[-*+]\s+|>\s*)", "", body)
        body = _MD_INLINE.sub(lambda m: m.group(2) or "", body).strip()
        if body and not re.fullmatch(r"[-*_=|: ]{3,}", body):
            out.append(Line(body, line.start, line.end, heading=heading, blank_before=line.blank_before))
    return out


# Block-level elements end a line; everything else (b, strong, a, span, em, font...) is inline and its text
# joins the line in place. Beautiful Soup's list of the standard's block elements, and the table parts.
_HTML_BLOCKS = frozenset(HTMLTreeBuilder.DEFAULT_BLOCK_ELEMENTS) | {
    "body",
    "caption",
    "html",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
}
_HTML_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_DROPPED = ("script", "style", "noscript", "head", "nav", "footer", "template")
_SOURCE_WINDOW = 1 << 16  # how far past the previous text a text is looked for to give its span (markup)
_SPAN_KEY = 16  # characters of a text looked for in the source: enough to place it among the markup
_ENTITY_CHARS = re.compile("[&<>\"'\xa0]")  # characters the source may hold as entities (&amp; &nbsp;)
_WIDE = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")


def _html_whitespace(text: str) -> str:
    """Whitespace collapsed as a browser shows it: one space, none for a line break between two Chinese
    characters (a source line break inside a Chinese sentence is no space)."""

    def space(m: re.Match[str]) -> str:
        before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
        joined = "\n" in m.group() and _WIDE.match(before) and _WIDE.match(after)
        return "" if joined else " "

    return re.sub(r"\s+", space, text).strip()


class _HtmlLines:
    """Lines of an HTML document being built: one per block element (and per <br>), with the text of its
    inline children joined in place, and its span in the source."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[Line] = []
        self.parts: list[str] = []
        self.span: tuple[int, int] | None = None
        self.heading = False
        self.blank_before = True
        self.cursor = 0

    def add(self, text: str, heading: bool) -> None:
        key = _ENTITY_CHARS.split(text.strip(), maxsplit=1)[0][:_SPAN_KEY]
        if key:
            found = self.source.find(key, self.cursor, self.cursor + _SOURCE_WINDOW)
            if found >= 0:
                end = found + len(text.strip())
                self.span = (self.span[0] if self.span else found, end)
                self.cursor = found + len(key)
            self.heading = self.heading or heading
        self.parts.append(text)

    def end_line(self, blank_after: bool) -> None:
        body = _html_whitespace("".join(self.parts))
        if body:
            start, end = self.span or (self.cursor, self.cursor)
            self.lines.append(
                Line(body, start, max(end, start), heading=self.heading, blank_before=self.blank_before)
            )
            self.blank_before = False
        self.blank_before = self.blank_before or blank_after
        self.parts, self.span, self.heading = [], None, False


def lines_from_html(text: str) -> list[Line]:
    """Lines of an HTML document: block elements (p, div, li, td, h1-h6...) and <br> end a line, inline
    elements (b, strong, a, span...) do not; headings are marked, <pre> keeps its line breaks."""
    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(_HTML_DROPPED):
        tag.decompose()
    lines = _HtmlLines(text)
    headings = pre = 0  # how many heading and <pre> elements the walk is inside
    stack: list[tuple[PageElement, bool]] = [(soup, False)]  # (node, leaving it): no recursion limit
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, Tag):
            name = node.name
            if name == "br":
                lines.end_line(blank_after=False)
                continue
            if name in _HTML_BLOCKS:
                lines.end_line(blank_after=True)
            step = -1 if leaving else 1
            headings += step if name in _HTML_HEADINGS else 0
            pre += step if name == "pre" else 0
            if not leaving:
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(node.contents))
        elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):  # no comments
            for i, piece in enumerate(node.split("\n") if pre else [str(node)]):
                if i:
                    lines.end_line(blank_after=False)
                lines.add(piece, heading=headings > 0)
    lines.end_line(blank_after=True)
    return lines.lines


def lines_from_docx(data: bytes, name: str) -> tuple[str, list[Line]]:
    try:
        import docx
    except ImportError as exc:  # pragma: no cover - the ui extra installs it
        raise DocumentError(name, "reading .docx needs python-docx: pip install 'rag[ui]'") from exc
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise DocumentError(name, f"not a readable .docx file ({exc})") from exc
    text_parts: list[str] = []
    out: list[Line] = []
    pos = 0
    for para in document.paragraphs:
        body = para.text.strip()
        if body:
            style = (para.style.name if para.style is not None else "") or ""
            heading = style.lower().startswith(("heading", "title", "标题"))
            out.append(Line(body, pos, pos + len(body), heading=heading, blank_before=True))
            text_parts.append(body)
            pos += len(body) + 1
    return "\n".join(text_parts), out


def lines_from_pdf(data: bytes, name: str) -> tuple[str, list[Line]]:
    try:
        import pypdf
    except ImportError as exc:  # pragma: no cover - the ui extra installs it
        raise DocumentError(name, "reading .pdf needs pypdf: pip install 'rag[ui]'") from exc
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:
        raise DocumentError(name, f"not a readable PDF ({exc})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise DocumentError(name, "the PDF holds no extractable text (a scan?); run OCR first")
    return text, lines_from_text(text)


# ---------------------------------------------------------------- lines → paragraphs

_PAGE_NUMBER = re.compile(r"^(?:[-—–第]?\s*\d{1,4}\s*[-—–页頁]?|page\s*\d+|\d+\s*/\s*\d+)$", re.IGNORECASE)
_FURNITURE = re.compile(
    r"(扫一扫|掃一掃|扫码|掃碼|二维码|二維碼|网安备|網安備|ICP备|ICP備|版权所有|版權所有|Copyright)", re.I
)
_HEADING_MARK = re.compile(
    r"^(?:[●■◆▲★○◎◇□▶]|[一二三四五六七八九十百]+、|[（(][一二三四五六七八九十]+[）)]|第[一二三四五六七八九十百\d]+[章节節部分篇条條])"
)
_SENTENCE_PUNCT = re.compile(r"[，,。；;！？!?]")
_TERMINAL = "。！？!?；;：:…”’」』)）】》\"'"
_OPENERS = "“‘「『(（【《●■◆▲★"


def _is_furniture(text: str) -> bool:
    return bool(_PAGE_NUMBER.match(text)) or bool(_FURNITURE.search(text))


def _is_speaker(text: str) -> bool:
    """A press-conference turn: 'role name:' alone on a line, or a short 'role:' label before text."""
    if not text.endswith((":", "：")) or len(text) > 40:
        return _inline_speaker(text) is not None
    return not _SENTENCE_PUNCT.search(text[:-1])


def _inline_speaker(text: str) -> str | None:
    m = re.match(r"^([^，,。:：；;！？!?]{2,8})[:：](\S.{0,40})$", text)
    if m and not _SENTENCE_PUNCT.search(text):
        return m.group(1)
    return None


def _is_heading(line: Line) -> bool:
    text = line.text
    if line.heading:
        return True
    if len(text) > 40 or text.endswith(("。", "！", "？", "!", "?", "；", ";", ":", "：")):
        return False
    if _HEADING_MARK.match(text):
        return "。" not in text
    # A short line with no punctuation at all is a title line (press-release layout).
    return len(text) <= 30 and not _SENTENCE_PUNCT.search(text) and ":" not in text and "：" not in text


def _continues(prev: str, nxt: Line) -> bool:
    """Whether nxt carries on prev across a page break: prev stops mid-sentence, nxt is no new block."""
    if not prev or prev[-1] in _TERMINAL:
        return False
    if not _SENTENCE_PUNCT.search(prev) and len(prev) < 20:
        return False
    first = nxt.text[0]
    return first not in _OPENERS and not _HEADING_MARK.match(nxt.text) and not _is_speaker(nxt.text)


def _drop_trailing_furniture(lines: list[Line]) -> list[Line]:
    """Page furniture at the end (QR prompts, registration numbers and the short site names around them)."""
    tail = len(lines)
    for i in range(len(lines) - 1, max(-1, len(lines) - 12), -1):
        if _FURNITURE.search(lines[i].text):
            tail = i
    kept = lines[:tail]
    for line in lines[tail:]:
        short = len(line.text) <= 20 and not _SENTENCE_PUNCT.search(line.text)
        if not (_is_furniture(line.text) or short):
            kept.append(line)
    return kept


def paragraphs_from_lines(doc: str, lines: Iterable[Line]) -> list[Paragraph]:
    """Group lines into paragraphs; headings become sections and speaker lines speakers."""
    body = _drop_trailing_furniture([ln for ln in lines if not _PAGE_NUMBER.match(ln.text)])
    body = [ln for ln in body if not _FURNITURE.search(ln.text)]
    # Page-break joins: a line that stops mid-sentence and the next line that carries it on.
    merged: list[Line] = []
    for line in body:
        if merged and line.blank_before and not line.heading and not merged[-1].heading:
            prev = merged[-1]
            if not _is_heading(prev) and not _is_speaker(prev.text) and _continues(prev.text, line):
                merged[-1] = Line(prev.text + line.text, prev.start, line.end, blank_before=prev.blank_before)
                continue
        merged.append(line)

    paragraphs: list[Paragraph] = []
    section = ""
    speaker = ""
    heading_run: list[str] = []
    full_labels: dict[str, str] = {}  # "主持人" -> "主持人:中共…副部長 王瑤", once a line has named them
    for line in merged:
        text = line.text
        if _is_speaker(text) and not line.heading:
            inline = _inline_speaker(text)
            if inline:
                speaker = full_labels[inline] = text
            else:
                label = text[:-1].strip()
                speaker = full_labels.get(label, label)
            section = ""
            heading_run = []
            if not inline:
                continue
        elif _is_heading(line):
            heading_run.append(text)
            section = " ".join(heading_run)
            continue
        heading_run = []
        paragraphs.append(
            Paragraph(
                doc=doc,
                paragraph=len(paragraphs) + 1,
                text=text,
                section=section,
                speaker=speaker,
                start=line.start,
                end=line.end,
            )
        )
    if not paragraphs and merged:  # a document of headings only still has its text
        paragraphs = [
            Paragraph(doc=doc, paragraph=i + 1, text=ln.text, start=ln.start, end=ln.end)
            for i, ln in enumerate(merged)
        ]
    return paragraphs


# ---------------------------------------------------------------- entry points


def sniff_kind(data: bytes, suffix: str) -> str:
    """The format by content: 'pdf', 'docx', 'html', 'md' or 'txt'; raises DocumentError for others."""
    if data.startswith(b"%PDF"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                if "word/document.xml" in zf.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            pass
        raise DocumentError(suffix, "a ZIP archive that is not a .docx document")
    if suffix in (".pdf", ".docx"):
        raise DocumentError(suffix, f"the content is not a {suffix} file")
    head = data[:2048].lower()
    if suffix in (".html", ".htm") or b"<html" in head or b"<!doctype html" in head:
        return "html"
    return "md" if suffix in (".md", ".markdown") else "txt"


def paragraphs_from_bytes(data: bytes, name: str) -> list[Paragraph]:
    """Paragraphs of one document given its bytes and file name."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise DocumentError(
            name, f"unsupported file type {suffix or '(none)'}; use one of {sorted(SUFFIXES)}"
        )
    if len(data) > MAX_BYTES:
        raise DocumentError(name, f"larger than {MAX_BYTES // 2**20} MiB; split it into smaller files")
    try:
        kind = sniff_kind(data, suffix)
    except DocumentError as exc:
        raise DocumentError(name, exc.reason) from exc
    if kind == "pdf":
        _, lines = lines_from_pdf(data, name)
    elif kind == "docx":
        _, lines = lines_from_docx(data, name)
    else:
        text = decode(data, name)
        if kind == "html":
            lines = lines_from_html(text)
        elif kind == "md":
            lines = lines_from_markdown(text)
        else:
            lines = lines_from_text(text)
    paragraphs = paragraphs_from_lines(name, lines)
    if not paragraphs:
        raise DocumentError(name, "no paragraphs of text found")
    return paragraphs


def read_document(path: str | Path) -> tuple[list[Paragraph], str]:
    """Paragraphs of the file at path and the sha256 of its bytes."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DocumentError(str(p), f"cannot be read ({exc.strerror or exc})") from exc
    return paragraphs_from_bytes(data, p.name), sha256_of(data)


def find_documents(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to index under the given files or folders, and (path, reason) for those left out."""
    found: list[Path] = []
    left_out: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(p).parts):
                    if child.suffix.lower() in SUFFIXES:
                        found.append(child)
                    else:
                        left_out.append((str(child), f"unsupported file type {child.suffix or '(none)'}"))
        elif p.is_file():
            found.append(p)
        else:
            left_out.append((str(p), "no such file or folder"))
    return found, left_out
