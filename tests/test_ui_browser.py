"""The web chat in a real browser: Debian's chromium driven by playwright (no downloaded browser)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from ui_support import (
    ARTIFACTS,
    FICTIONAL_ANSWER,
    FICTIONAL_NAME,
    FICTIONAL_QUESTION,
    FICTIONAL_TEXT,
    Server,
    running_server,
)

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("ui-browser")) as s:
        yield s


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator[Page]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install -y chromium fonts-noto-cjk)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="zh-CN")
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(server.url)
        yield pg
        browser.close()


def ask_in_page(page: Page, question: str) -> None:
    page.fill("#rag-question textarea", question)
    page.click("#rag-send")


def test_page_shows_readiness_and_chinese_interface(page: Page) -> None:
    expect(page.locator("#rag-status")).to_contain_text("索引已就绪：2 个文档")
    expect(page.get_by_role("tab", name="问答")).to_be_visible()
    expect(page.get_by_role("tab", name="文档")).to_be_visible()


def test_question_gets_answer_with_highlighted_source(page: Page) -> None:
    ask_in_page(page, "2024年左权县的地区生产总值有多少？")
    answer = page.locator("#rag-chat .rag-answer:not(.rag-streaming)").last
    expect(answer).to_contain_text("80亿")
    mark = page.locator("#rag-chat .rag-source mark").first
    expect(mark).to_contain_text("2024年左权县地区生产总值突破80亿元")
    # The [1] marker is a link to the source card of the same answer.
    href = answer.locator("a.rag-cite").first.get_attribute("href")
    assert href and href.startswith("#")
    expect(page.locator(f"[id='{href[1:]}']")).to_contain_text("000_8e3a739afda006bb.txt")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"))
    assert (ARTIFACTS / "chat.png").stat().st_size > 10_000


def test_not_found_looks_different(page: Page) -> None:
    ask_in_page(page, "左权县总人口有多少？")
    expect(page.locator("#rag-chat .rag-notfound").last).to_contain_text("文档中没有找到答案")
    expect(page.locator("#rag-chat .rag-closest").last).to_contain_text("最接近的")


def test_documents_tab_lists_documents(page: Page) -> None:
    page.get_by_role("tab", name="文档").click()
    expect(page.get_by_role("gridcell", name="000_8e3a739afda006bb.txt")).to_be_visible()
    expect(page.get_by_role("gridcell", name="004_7b7eee9865cdd99f.txt")).to_be_visible()
    page.get_by_role("tab", name="问答").click()


def test_upload_in_the_documents_tab_then_ask(page: Page, tmp_path: Path) -> None:
    path = tmp_path / FICTIONAL_NAME
    path.write_text(FICTIONAL_TEXT, encoding="utf-8")
    page.get_by_role("tab", name="文档").click()
    page.locator("#rag-upload input[type=file]").set_input_files(str(path))
    page.get_by_role("button", name="添加到索引").click()
    expect(page.locator("#rag-report")).to_contain_text(f"已添加 {FICTIONAL_NAME}")
    expect(page.get_by_role("gridcell", name=FICTIONAL_NAME)).to_be_visible()
    expect(page.locator("#rag-status")).to_contain_text("3 个文档")
    page.get_by_role("tab", name="问答").click()
    page.locator("#rag-clear").click()  # a fresh conversation: no follow-up folding
    expect(page.locator("#rag-chat .rag-answer")).to_have_count(0)
    ask_in_page(page, FICTIONAL_QUESTION)
    expect(page.locator("#rag-chat .rag-answer:not(.rag-streaming)").last).to_contain_text(FICTIONAL_ANSWER)
    expect(page.locator("#rag-chat .rag-source mark").last).to_contain_text("紫色茶树3721亩")


def test_chat_trash_icon_also_forgets_the_session(page: Page) -> None:
    page.locator("#rag-chat button[aria-label='清空对话']").click()
    expect(page.locator("#rag-chat .rag-answer")).to_have_count(0)
    ask_in_page(page, "左权县有机作物种了多少亩？")
    expect(page.locator("#rag-chat .rag-answer:not(.rag-streaming)")).to_have_count(1)
    expect(page.locator("#rag-chat .rag-answer").last).to_contain_text("8万亩")
