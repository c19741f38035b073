"""The only module that reads document files: bytes → text → paragraphs with section and speaker.

Formats: .txt, .md, .html/.htm, .docx, .pdf. Encodings are detected (BOM, strict UTF-8, then
charset-normalizer for GB18030/GBK, Big5, UTF-16); text that decodes to mojibake is refused.
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

from rag.errors import DocumentError
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


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    import charset_normalizer

    best = charset_normalizer.from_bytes(
        data, cp_isolation=["gb18030", "big5", "utf_16", "utf_16_le", "utf_16_be", "cp1252", "latin_1"]
    ).best()
    if best is None:
        raise DocumentError(name, "the encoding could not be detected; save it as UTF-8 and add it again")
    if best.encoding == "gb2312" or best.encoding == "gbk":  # GB18030 is the superset; never lose characters
        text = data.decode("gb18030", errors="replace")
    else:
        text = str(best)
    return _checked(text, name, detected=best.encoding)


def _checked(text: str, name: str, detected: str = "utf-8") -> str:
    """Refuse text that looks like mojibake: replacement characters, Latin-1 soup, control characters."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        raise DocumentError(name, "the file holds no text")
    bad = sum(1 for c in visible if c == "\ufffd" or _is_mojibake_char(c))
    if bad / len(visible) > 0.02:
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


_BLOCKS = ("p", "div", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "section")


def lines_from_html(text: str) -> list[Line]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "head", "nav", "footer"]):
        tag.decompose()
    out: list[Line] = []
    cursor = 0
    for block in soup.find_all(_BLOCKS):
        if block.find(_BLOCKS):  # only innermost blocks, so nothing is read twice
            continue
        for piece in block.get_text("\n").split("\n"):
            body = " ".join(piece.split())
            if not body:
                continue
            found = text.find(body, cursor)
            start = found if found >= 0 else cursor
            if found >= 0:
                cursor = found + len(body)
            heading = block.name in ("h1", "h2", "h3", "h4", "h5", "h6")
            out.append(Line(body, start, start + len(body), heading=heading, blank_before=True))
    return out


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
