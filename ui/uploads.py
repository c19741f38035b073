"""Checks on uploaded files before they reach the index: where they came from, name, size and type by content.

Only a regular file that a client sent (it lies in the server's upload folder) is opened, and never more
than the size limit plus one byte is read: a path naming /dev/zero, a pipe or a file elsewhere on the
server is refused before any read. The extension must agree with what the bytes are (a PDF starts with
%PDF-, a .docx is a zip holding word/document.xml, text decodes), so a renamed binary is refused here
with a reason the user can read.

Scanned documents (image-only PDF pages, .png, .jpg) are not read in the upload's request: `split_scans`
tells them from the rest, rag.writer.queue_scans reads them in the background, and the reply says so.
`upload_notes` says what each document gave (ui/render.py `source_link` opens a stored PDF or image).
"""

from __future__ import annotations

import io
import os
import re
import stat
import unicodedata
import zipfile
from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.ocr import scanned_pages
from rag.store import SOURCE_SUFFIXES
from rag.types import BuildReport

if TYPE_CHECKING:
    from rag.writer import ScanJob

ALLOWED_SUFFIXES = (
    ".txt",
    ".md",
    ".markdown",
    ".html",
    ".htm",
    ".docx",
    ".pdf",
    ".xlsx",
    ".csv",
    ".png",
    ".jpg",
    ".jpeg",
)
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".csv"})
IMAGE_SIGNATURES = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff"}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_NAME_CHARS = 120
TEXT_ENCODINGS = ("utf-8-sig", "gb18030", "big5")

_UNSAFE_RE = re.compile(r"[^\w.\-（）()·]+", re.UNICODE)


class UploadRejected(ValueError):
    """An uploaded file that will not be indexed, with a reason in Chinese."""


@dataclass(frozen=True)
class CheckedUpload:
    """An accepted upload: where it is now and the safe name it will be indexed under."""

    path: Path
    name: str


def safe_name(name: str) -> str:
    """A file name with no folders, control or shell characters, and a lower-case extension."""
    name = unicodedata.normalize("NFKC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = _UNSAFE_RE.sub("_", stem).strip("._ ")[:MAX_NAME_CHARS] or "document"
    suffix = _UNSAFE_RE.sub("", suffix).lower()
    return f"{stem}.{suffix}" if suffix else stem


def _decodes(data: bytes) -> bool:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            data.decode("utf-16")
            return True
        except UnicodeDecodeError:
            return False
    if b"\x00" in data:
        return False
    for encoding in TEXT_ENCODINGS:
        try:
            data.decode(encoding)
            return True
        except UnicodeDecodeError:
            continue
    return False


def check_content(data: bytes, suffix: str) -> None:
    """Raise UploadRejected when the bytes do not match the extension."""
    if suffix == ".pdf":
        if not data[:1024].lstrip(b"\r\n\t ").startswith(b"%PDF-"):
            raise UploadRejected("扩展名是 .pdf，但内容不是 PDF（缺少 %PDF- 文件头）")
    elif suffix in (".docx", ".xlsx"):
        kind, member = (
            ("Word 文档", "word/document.xml") if suffix == ".docx" else ("Excel 工作簿", "xl/workbook.xml")
        )
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            raise UploadRejected(f"扩展名是 {suffix}，但内容不是 {kind}（不是 zip 格式）") from None
        if member not in names:
            raise UploadRejected(f"扩展名是 {suffix}，但压缩包里没有 {member}")
    elif suffix in IMAGE_SIGNATURES:
        if not data.startswith(IMAGE_SIGNATURES[suffix]):
            raise UploadRejected(f"扩展名是 {suffix}，但内容不是 {suffix[1:].upper()} 图片")
    elif suffix in TEXT_SUFFIXES:
        if data.startswith((b"%PDF-", b"PK\x03\x04")) or not _decodes(data):
            raise UploadRejected("不是可读的文本文件：无法按 UTF-8、GB18030 或 Big5 解码")
        if not data.strip():
            raise UploadRejected("文件是空的")


def _too_big(size: int, max_bytes: int) -> UploadRejected:
    return UploadRejected(f"文件太大（{size / 1048576:.1f} MB），上限 {max_bytes / 1048576:.0f} MB")


def read_upload(path: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """The bytes of a regular file, at most max_bytes of them; anything else is refused unread.

    The kind is checked before opening (opening a pipe blocks, a device can have effects) and again on the
    open descriptor, so a file swapped for a link or a device in between is refused too.
    """
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise UploadRejected("不是普通文件（设备、管道、目录或链接），没有读取")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UploadRejected("不是普通文件（设备、管道、目录或链接），没有读取")
        if info.st_size > max_bytes:
            raise _too_big(info.st_size, max_bytes)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_big(len(data), max_bytes)
    if not data:
        raise UploadRejected("文件是空的")
    return data


def sent_by_client(path: str, upload_dir: Path, sent: Container[str] | None = None) -> Path:
    """The path of a file a client uploaded: inside the server's upload folder (links resolved) and, when
    the server keeps a record of what it received (`sent`), named in it. UploadRejected otherwise."""
    given = Path(os.path.abspath(path))
    inside = given.resolve().is_relative_to(upload_dir.resolve())
    if not inside or (sent is not None and path not in sent and str(given) not in sent):
        raise UploadRejected("不是通过本服务上传的文件，没有读取；请在“文档”页选择文件上传")
    return given


def _checked(path: Path, original_name: str, max_bytes: int) -> tuple[str, bytes]:
    name = safe_name(original_name)
    suffix = Path(name).suffix
    if suffix not in ALLOWED_SUFFIXES:
        raise UploadRejected(
            f"不支持的文件类型 {suffix or '（无扩展名）'}；可上传 {' '.join(ALLOWED_SUFFIXES)}"
        )
    data = read_upload(path, max_bytes)
    check_content(data, suffix)
    return name, data


def check_upload(path: Path, original_name: str, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """The safe name to index an uploaded file under; UploadRejected says why it cannot be."""
    return _checked(path, original_name, max_bytes)[0]


def stage_uploads(
    uploads: list[Path], staging: Path, max_bytes: int = MAX_UPLOAD_BYTES
) -> tuple[list[CheckedUpload], list[tuple[str, str]]]:
    """Write the acceptable uploads into `staging` under safe names (the bytes that were checked, not a
    second read); the rest come back with reasons."""
    accepted: list[CheckedUpload] = []
    rejected: list[tuple[str, str]] = []
    seen: set[str] = set()
    for upload in uploads:
        try:
            name, data = _checked(upload, upload.name, max_bytes)
        except UploadRejected as e:
            rejected.append((upload.name, str(e)))
            continue
        except OSError as e:
            rejected.append((upload.name, f"无法读取：{e.strerror or e}"))
            continue
        if name in seen:
            rejected.append((upload.name, f"与本次上传的另一个文件同名（{name}）"))
            continue
        seen.add(name)
        target = staging / name
        target.write_bytes(data)
        accepted.append(CheckedUpload(target, name))
    return accepted, rejected


def split_scans(accepted: list[CheckedUpload]) -> tuple[list[CheckedUpload], list[CheckedUpload]]:
    """The uploads read at once (text, Word, tables, PDFs with a text layer) and those with scanned pages
    to OCR (read in the background): a quick look at each PDF's pages (rag.ocr.scanned_pages)."""
    now: list[CheckedUpload] = []
    scans: list[CheckedUpload] = []
    for upload in accepted:
        scanned = Path(upload.name).suffix in SOURCE_SUFFIXES and bool(
            scanned_pages(upload.path.read_bytes())
        )
        (scans if scanned else now).append(upload)
    return now, scans


def stats_words(stats: Mapping[str, Any]) -> str:
    """What reading a document found, in Chinese: 段落、表格和行、页数、OCR 识别的页、把握不大的行."""
    parts = [f"{stats.get('paragraphs', 0)} 个段落"]
    if stats.get("tables"):
        parts.append(f"{stats['tables']} 个表格（{stats.get('table_rows', 0)} 行）")
    if stats.get("pages"):
        parts.append(f"{stats['pages']} 页")
    if stats.get("pages_ocr"):
        parts.append(f"OCR 识别 {stats['pages_ocr']} 页" if stats.get("pages") else "图片经 OCR 识别")
    if stats.get("low_confidence"):
        parts.append(f"{stats['low_confidence']} 行识别把握不大")
    return "，".join(parts)


def stats_lines(stats_by_name: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One Markdown line per document with what reading it found, and its notes (what was left out, why)."""
    lines = []
    for name, stats in sorted(stats_by_name.items()):
        lines.append(f"- `{name}`：{stats_words(stats)}")
        lines.extend(f"  - {note}" for note in stats.get("notes", []))
    return lines


def read_stats(engine: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """What reading each of these indexed documents found, as the index keeps it (empty for an index that
    keeps none)."""
    kept = getattr(getattr(engine, "store", None), "doc_stats", None) or {}
    return {n: dict(kept[n]) for n in names if n in kept}


def upload_notes(engine: Any, report: BuildReport | None, queued: ScanJob | None) -> str:
    """What the web upload's reply adds to the list of added documents: what each one gave, and the scanned
    documents left to read in the background."""
    lines = stats_lines(read_stats(engine, report.added + report.updated)) if report is not None else []
    if queued is not None and queued.state != "done":
        names = "、".join(f"`{n}`" for n in queued.documents)
        lines.append(
            f"- {names}：{queued.pages_total} 页待识别 (OCR), 完成后自动加入索引（任务 {queued.id}）"
        )
    if queued is not None:
        lines.extend(f"- 未能索引 `{Path(s.path).name}`：{s.reason}" for s in queued.skipped)
    if lines:
        lines.insert(0, "\n**读取结果**")
    return "\n".join(lines)
