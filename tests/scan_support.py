"""Scans made in the test, as scanners give them: Chinese text rendered with a CJK font (PIL), JPEG pages
wrapped as an image-only PDF (reportlab), and small one-line pages that OCR reads in about a second."""

from __future__ import annotations

import io
import subprocess
from typing import Any

import pytest

SMALL_PAGE_PX = (740, 740)  # rapidocr scales a page whose short side is under 736 px up to it
SMALL_PAGE_DPI = 150


def cjk_font(size: int) -> Any:
    """A Simplified Chinese font as fontconfig finds it (Noto Sans CJK SC, installed by `make browser`)."""
    from PIL import ImageFont

    found = subprocess.run(
        ["fc-match", "-f", "%{file}\n%{index}\n%{lang}", "sans-serif:lang=zh-cn"],
        capture_output=True,
        text=True,
    ).stdout
    path, index, langs = (found.split("\n") + ["", "", ""])[:3]
    if "zh-cn" not in langs.split("|"):
        pytest.skip("no Chinese font installed (fonts-noto-cjk: make browser)")
    return ImageFont.truetype(path, size, index=int(index or 0))


def jpeg(image: Any, quality: int = 60) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def image_only_pdf(*pages: bytes, size: tuple[float, float] | None = None) -> bytes:
    """JPEG pages wrapped as a PDF with no text layer (reportlab embeds a JPEG as it is); A4 pages unless
    size (points) is given."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    page_size = size or A4
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=page_size)
    for page in pages:
        c.drawImage(ImageReader(io.BytesIO(page)), 0, 0, *page_size)
        c.showPage()
    c.save()
    return out.getvalue()


def line_page(text: str) -> Any:
    """A small page image holding one line of text at 40 px."""
    from PIL import Image, ImageDraw

    image = Image.new("L", SMALL_PAGE_PX, 255)
    ImageDraw.Draw(image).text((40, 300), text, font=cjk_font(40), fill=0)
    return image


def small_scan_pdf(lines: list[str]) -> bytes:
    """An image-only PDF with one small page per line, scanned at SMALL_PAGE_DPI."""
    points = tuple(px / SMALL_PAGE_DPI * 72 for px in SMALL_PAGE_PX)
    return image_only_pdf(*(jpeg(line_page(t), quality=80) for t in lines), size=(points[0], points[1]))
