"""Checks on uploaded files before they reach the index: name, size and type by content.

The extension must agree with what the bytes are (a PDF starts with %PDF-, a .docx is a zip holding
word/document.xml, text decodes), so a renamed binary is refused here with a reason the user can read.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

ALLOWED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".docx", ".pdf")
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm"})
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


def check_content(path: Path, suffix: str) -> None:
    """Raise UploadRejected when the bytes do not match the extension."""
    if suffix == ".pdf":
        with path.open("rb") as f:
            if not f.read(1024).lstrip(b"\r\n\t ").startswith(b"%PDF-"):
                raise UploadRejected("扩展名是 .pdf，但内容不是 PDF（缺少 %PDF- 文件头）")
    elif suffix == ".docx":
        if not zipfile.is_zipfile(path):
            raise UploadRejected("扩展名是 .docx，但内容不是 Word 文档（不是 zip 格式）")
        with zipfile.ZipFile(path) as z:
            if "word/document.xml" not in z.namelist():
                raise UploadRejected("扩展名是 .docx，但压缩包里没有 word/document.xml")
    elif suffix in TEXT_SUFFIXES:
        data = path.read_bytes()
        if data.startswith((b"%PDF-", b"PK\x03\x04")) or not _decodes(data):
            raise UploadRejected("不是可读的文本文件：无法按 UTF-8、GB18030 或 Big5 解码")
        if not data.strip():
            raise UploadRejected("文件是空的")


def check_upload(path: Path, original_name: str, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """The safe name to index an uploaded file under; UploadRejected says why it cannot be."""
    name = safe_name(original_name)
    suffix = Path(name).suffix
    if suffix not in ALLOWED_SUFFIXES:
        raise UploadRejected(
            f"不支持的文件类型 {suffix or '（无扩展名）'}；可上传 {' '.join(ALLOWED_SUFFIXES)}"
        )
    size = path.stat().st_size
    if size == 0:
        raise UploadRejected("文件是空的")
    if size > max_bytes:
        raise UploadRejected(f"文件太大（{size / 1048576:.1f} MB），上限 {max_bytes / 1048576:.0f} MB")
    check_content(path, suffix)
    return name


def stage_uploads(
    uploads: list[Path], staging: Path, max_bytes: int = MAX_UPLOAD_BYTES
) -> tuple[list[CheckedUpload], list[tuple[str, str]]]:
    """Copy the acceptable uploads into `staging` under safe names; the rest come back with reasons."""
    accepted: list[CheckedUpload] = []
    rejected: list[tuple[str, str]] = []
    seen: set[str] = set()
    for upload in uploads:
        try:
            name = check_upload(upload, upload.name, max_bytes)
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
        shutil.copyfile(upload, target)
        accepted.append(CheckedUpload(target, name))
    return accepted, rejected
