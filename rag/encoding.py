"""Bytes → text: the encoding detected (BOM, strict UTF-8, GB18030 or Big5 by which reads as Chinese words,
then charset-normalizer for UTF-16 and the rest), and text that decodes to mojibake refused with how it was
garbled, found by undoing the misreading (see misreading_of).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import jieba

from rag.errors import DocumentError
from rag.text import to_simplified

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
