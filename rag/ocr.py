"""OCR of scanned pages and images, offline: rapidocr-onnxruntime runs PP-OCRv4's Chinese detection and
recognition models, which its wheel carries (nothing is downloaded).

OCR is the slow part of reading a document (seconds a page on a laptop CPU), so it goes page by page:
`ocr_pages` yields each page's text boxes as it is read and reports progress, so that a caller can run it
as background work and show how far it got. Reading order and paragraphs are rag/layout.py's job.

Who reads a document decides what happens to its scanned pages with `reading(pages, read_missing)`, in
force for the calls below it in the same thread (rag/pdf.py and rag/documents.py call `ocr_pages` without
knowing): pages already read come from `pages` (a job folder keeps them, rag/journal.py), a page read now
is put there as soon as it is done, and with read_missing False a page not read yet is not OCR'd at all:
`OcrPending` names the pages, so that planning a job never waits for OCR (rag/writer.py does it later).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from rag.errors import DocumentError
from rag.layout import Box, PageBoxes
from rag.tables import WIDE_CHAR

if TYPE_CHECKING:
    from PIL.Image import Image

# A scanned page is rendered at its image's own resolution, within these bounds: more pixels than the scan
# has add no detail but cost detection time (it grows with the pixels); under 150 dpi 10.5 pt body text is
# under 22 px high, short of PP-OCR's 48-px line crops; over 200 dpi rapidocr shrinks the page anyway (a
# side over 2000 px). A page whose image size is unknown is rendered at OCR_DPI.
OCR_DPI = 200
MIN_OCR_DPI = 150
# A line read with less than this score (0-1) is flagged in the report: on our rendered test scans
# (tests/test_ocr.py) correct lines score 0.95-1.0, and rapidocr itself drops lines under 0.5.
LOW_CONFIDENCE = 0.8
MAX_IMAGE_PIXELS = 80_000_000  # a larger image is not a page scan (a 600 dpi A3 page has 70 million)

PageProgress = Callable[[int, int], None]  # (pages OCR'd so far, pages to OCR)


@dataclass(frozen=True)
class PageText:
    """What OCR read on one page: its boxes (pixels of the page image), and how long it took."""

    page: int  # 1-based page of the PDF; 0 for an image file
    width: float
    height: float
    boxes: tuple[Box, ...]
    seconds: float

    @property
    def chars(self) -> int:
        return sum(len(b.text) for b in self.boxes)

    @property
    def low_confidence(self) -> list[Box]:
        return [b for b in self.boxes if b.confidence < LOW_CONFIDENCE]

    def as_page(self) -> PageBoxes:
        return PageBoxes(self.page, self.width, self.height, self.boxes, ocr=True)

    def as_json(self) -> dict[str, Any]:
        """What a job folder keeps of a page read (rag/journal.py), for `from_json`."""
        return {
            "page": self.page,
            "width": self.width,
            "height": self.height,
            "seconds": self.seconds,
            "boxes": [[b.text, b.x0, b.top, b.x1, b.bottom, b.size, b.confidence] for b in self.boxes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageText:
        boxes = tuple(
            Box(
                str(t), float(x0), float(top), float(x1), float(bottom), size=float(size), confidence=float(c)
            )
            for t, x0, top, x1, bottom, size, c in data["boxes"]
        )
        return cls(
            int(data["page"]), float(data["width"]), float(data["height"]), boxes, float(data["seconds"])
        )


class OcrPending(DocumentError):
    """A document with pages to OCR, read where OCR is not to run now (`reading(..., read_missing=False)`)."""

    def __init__(self, pages: Sequence[int]) -> None:
        super().__init__("document", f"{len(pages)} scanned page(s) to OCR")
        self.pages = list(pages)  # 1-based PDF pages; [0] for an image


class PageStore(Protocol):
    """Pages read so far of one document: `get` one (None when not read yet), `put` one as it is read."""

    def get(self, page: int) -> PageText | None: ...

    def put(self, text: PageText) -> None: ...


@dataclass(frozen=True)
class _Reading:
    pages: PageStore | None
    read_missing: bool


_READING: ContextVar[_Reading | None] = ContextVar("rag_ocr_reading", default=None)


@contextmanager
def reading(pages: PageStore | None, read_missing: bool = True) -> Iterator[None]:
    """Within: scanned pages come from pages when read before, are OCR'd and put there otherwise; with
    read_missing False a page not read yet raises OcrPending (listing every such page) instead."""
    token = _READING.set(_Reading(pages, read_missing))
    try:
        yield
    finally:
        _READING.reset(token)


@lru_cache(maxsize=1)
def _engine() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:  # pragma: no cover - the ui extra installs it
        raise DocumentError("OCR", "reading scans needs rapidocr-onnxruntime: pip install 'rag[ui]'") from exc
    return RapidOCR()


def ocr_image(image: Image) -> tuple[Box, ...]:
    """The text boxes OCR finds in an image: each with its text, its place, its type size (the box's
    height along its own slant, so a slightly rotated scan keeps its sizes) and its score."""
    result, _ = _engine()(image.convert("RGB"))
    boxes: list[Box] = []
    for quad, text, score in result or []:
        xs = [float(p[0]) for p in quad]
        ys = [float(p[1]) for p in quad]
        text = str(text).strip()
        if text:
            boxes.append(
                Box(
                    text,
                    min(xs),
                    min(ys),
                    max(xs),
                    max(ys),
                    size=_type_size(quad, text),
                    confidence=max(float(score), 1e-6),
                )
            )
    return tuple(boxes)


def _type_size(quad: Sequence[Sequence[float]], text: str) -> float:
    """The type size of a line OCR read: its length along its own slant over its characters (a Chinese
    character is square, a Latin letter or digit about half as wide). The box's height is no measure: the
    detector pads short boxes more than long ones."""
    length = (_distance(quad[0], quad[1]) + _distance(quad[3], quad[2])) / 2
    ems = sum(1.0 if WIDE_CHAR.match(c) else 0.5 for c in text)
    height = (_distance(quad[0], quad[3]) + _distance(quad[1], quad[2])) / 2
    return min(length / ems, height) if ems >= 2 else height


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return float(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5)


def ocr_page_image(image: Image, page: int) -> PageText:
    started = time.perf_counter()
    boxes = ocr_image(image)
    return PageText(page, float(image.width), float(image.height), boxes, time.perf_counter() - started)


def open_image(data: bytes, name: str) -> Image:
    """A .png or .jpg file's image, or DocumentError saying why it cannot be read."""
    from PIL import Image as PILImage

    try:
        image = PILImage.open(io.BytesIO(data))
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise DocumentError(
                name,
                f"the image has {image.width}×{image.height} pixels; scale it to a page and add it again",
            )
        image.load()
    except DocumentError:
        raise
    except Exception as exc:
        raise DocumentError(name, f"not a readable image ({exc})") from exc
    return image


def ocr_pages(
    source: bytes, pages: Sequence[int] | None = None, on_page: PageProgress | None = None
) -> Iterator[PageText]:
    """OCR a PDF's pages (1-based numbers; all when None) or an image's bytes, one page at a time:
    each page's text is yielded as soon as it is read, and on_page(done, total) is called after each page
    read now (done counts the pages kept from before too: see `reading`)."""
    context = _READING.get() or _Reading(None, True)
    kept = context.pages
    if not source.startswith(b"%PDF"):
        found = kept.get(0) if kept is not None else None
        if found is None and not context.read_missing:
            raise OcrPending([0])
        if found is None:
            found = ocr_page_image(open_image(source, "image"), 0)
            if kept is not None:
                kept.put(found)
            if on_page is not None:
                on_page(1, 1)
        yield found
        return
    import pypdfium2

    document = pypdfium2.PdfDocument(source)
    try:
        numbers = list(pages) if pages is not None else list(range(1, len(document) + 1))
        before = {n: t for n in numbers if kept is not None and (t := kept.get(n)) is not None}
        if not context.read_missing and len(before) < len(numbers):
            raise OcrPending([n for n in numbers if n not in before])
        for number in numbers:
            text = before.get(number)
            if text is None:
                page = document[number - 1]
                image = page.render(scale=_scan_dpi(page) / 72).to_pil()
                text = ocr_page_image(image, number)
                before[number] = text
                if kept is not None:
                    kept.put(text)
                if on_page is not None:
                    on_page(len(before), len(numbers))
            yield text
    finally:
        document.close()


def scanned_pages(source: bytes) -> list[int]:
    """The pages of a PDF that will need OCR (1-based), or [0] for an image, [] for anything else: a quick
    look (pdfium's text count and image objects), taken before a document is read, to tell which uploads
    are to be read in the background."""
    if source.startswith((b"\x89PNG", b"\xff\xd8\xff")):
        return [0]
    if not source.lstrip(b"\r\n\t ").startswith(b"%PDF"):
        return []
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    from rag.pdf import MIN_TEXT_LAYER_CHARS  # rag/pdf.py's rule for a scanned page (it imports this module)

    try:
        document = pypdfium2.PdfDocument(source)
    except Exception:  # unreadable: reading it says why
        return []
    try:
        found = []
        for number in range(1, len(document) + 1):
            page = document[number - 1]
            chars = page.get_textpage().count_chars()
            if chars < MIN_TEXT_LAYER_CHARS and any(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,))):
                found.append(number)
        return found
    finally:
        document.close()


def _scan_dpi(page: Any) -> float:
    """The resolution to render a scanned page at: its largest image's, within MIN_OCR_DPI..OCR_DPI."""
    import pypdfium2.raw as pdfium_c

    best = 0.0
    for image in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,)):
        left, _, right, _ = image.get_bounds()
        width_px, _ = image.get_px_size()
        if right - left > 0:
            best = max(best, width_px / ((right - left) / 72))
    return min(max(best, MIN_OCR_DPI), OCR_DPI) if best else OCR_DPI
