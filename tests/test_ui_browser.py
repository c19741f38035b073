"""The web chat in a real browser: Debian's chromium driven by playwright (no downloaded browser).

The tests share one page and run in order, as one person's visit: later ones find the earlier answers
in the chat (so it scrolls) and the upload of the documents tab is removed again at the end.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from ui_support import (
    ARTIFACTS,
    EMOJI_RE,
    FICTIONAL_ANSWER,
    FICTIONAL_NAME,
    FICTIONAL_QUESTION,
    FICTIONAL_TEXT,
    Server,
    shared_server,
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
DESKTOP = {"width": 1280, "height": 1000}
PHONE = {"width": 390, "height": 844}  # an iPhone 12-14 screen in CSS pixels
FINISHED = "#rag-chat .rag-answer:not(.rag-streaming)"
# Assertions wait as long as page actions: Playwright's own 5 s is less than the documents list's 5-second
# refresh timer plus one answer on two busy cores (CI runs the whole suite there).
expect.set_options(timeout=TIMEOUT_MS)

# Every visible piece of text in the chat's scrolling area, at each scroll position, against the label
# and buttons drawn on the chat's frame: the rectangles that overlap.
COVERED_TEXT_JS = """() => {
  const chat = document.querySelector('#rag-chat');
  const scroller = chat.querySelector('.bubble-wrap');
  const covers = [...chat.querySelectorAll(':scope > .wrapper > label, :scope > .wrapper > .icon-button-wrapper')]
    .map((e) => e.getBoundingClientRect()).filter((r) => r.width > 0 && r.height > 0);
  const hits = [];
  for (let top = 0; top <= scroller.scrollHeight; top += 20) {
    scroller.scrollTop = top;
    const view = scroller.getBoundingClientRect();
    const walker = document.createTreeWalker(scroller, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) {
        const t = Math.max(r.top, view.top), b = Math.min(r.bottom, view.bottom);
        if (b <= t) continue;
        for (const c of covers) {
          if (r.left < c.right && r.right > c.left && t < c.bottom && b > c.top) hits.push(node.textContent.slice(0, 20));
        }
      }
    }
  }
  scroller.scrollTop = scroller.scrollHeight;
  return [covers.length, hits];
}"""

# Counts the progress displays shown at once while an event runs.
WATCH_PROGRESS_JS = """() => {
  window.ragMostTrackers = 0;
  const count = () => document.querySelectorAll('[data-testid=status-tracker]:not(.hide)').length;
  window.ragWatch = new MutationObserver(() => { window.ragMostTrackers = Math.max(window.ragMostTrackers, count()); });
  window.ragWatch.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}"""

# The documents table (the one headed 添加时间) needs no sideways scrolling and no cell is cut.
TABLE_FITS_JS = """() => {
  const table = [...document.querySelectorAll('table')].find((t) => t.innerText.includes('添加时间'));
  if (!table) return false;
  const view = table.closest('.virtual-table-viewport') || table.parentElement;
  const right = view.getBoundingClientRect().right;
  const cut = [...view.querySelectorAll('td, th')].filter((cell) => cell.getBoundingClientRect().right > right + 1);
  return view.scrollWidth <= view.clientWidth && cut.length === 0;
}"""


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return shared_server(request.config, tmp_path_factory)


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator[Page]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install -y chromium fonts-noto-cjk)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/"))
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


def test_llm_is_not_offered_without_a_model_and_the_page_says_what_to_set(page: Page) -> None:
    expect(page.get_by_role("radio")).to_have_count(1)  # 回答方式 is the page's only choice of that kind
    expect(page.get_by_role("radio", name="抽取式：只引用原文句子")).to_be_checked()
    expect(page.get_by_text("大模型未启用")).to_contain_text("RAG_LLM_BASE_URL")


def test_no_emoji_that_would_show_as_boxes(page: Page) -> None:
    assert EMOJI_RE.findall(page.evaluate("document.body.innerText")) == []


def test_question_gets_answer_with_highlighted_source(page: Page) -> None:
    ask_in_page(page, "2024年左权县的地区生产总值有多少？")
    answer = page.locator(FINISHED).last
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


def test_copy_button_copies_the_plain_answer_with_its_sources(page: Page) -> None:
    page.locator("#rag-chat .rag-copy").last.click()
    expect(page.locator("#rag-chat .rag-copy").last).to_have_text("已复制")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("80亿元[1]\n2024年左权县地区生产总值突破80亿元")  # the answer, then its sentence
    assert "\n来源：\n[1] 000_8e3a739afda006bb.txt 第 " in copied
    assert "<" not in copied and "class=" not in copied


def test_typed_text_survives_and_a_question_sent_meanwhile_is_answered_next(page: Page) -> None:
    before = page.locator(FINISHED).count()
    ask_in_page(page, "左雲縣一共有多少家活性炭企業？")
    # as a person types: after the box empties (the question has left it), not within the same millisecond,
    # when the page can still read the box for the question just sent
    expect(page.locator("#rag-question textarea")).to_have_value("")
    page.fill("#rag-question textarea", "其中规模以上的有几家？")  # sent while the first one is answered
    page.press("#rag-question textarea", "Enter")
    expect(page.locator("#rag-question textarea")).to_have_value("")
    page.fill("#rag-question textarea", "还没写完的问题")
    expect(page.locator(FINISHED)).to_have_count(before + 2)
    expect(page.locator(FINISHED).nth(before)).to_contain_text("14家")
    expect(page.locator(FINISHED).nth(before + 1)).to_contain_text("7家")  # a follow-up of the first
    expect(page.locator("#rag-question textarea")).to_have_value("还没写完的问题")
    page.fill("#rag-question textarea", "")


def test_not_found_looks_different(page: Page) -> None:
    ask_in_page(page, "左权县总人口有多少？")
    expect(page.locator("#rag-chat .rag-notfound").last).to_contain_text("文档中没有找到答案")
    expect(page.locator("#rag-chat .rag-closest").last).to_contain_text("最接近的")


def test_chat_label_and_buttons_never_cover_scrolled_text(page: Page) -> None:
    covers, hits = page.evaluate(COVERED_TEXT_JS)
    assert covers >= 1  # the 对话 label at least
    assert hits == []


def test_documents_tab_lists_documents(page: Page) -> None:
    page.get_by_role("tab", name="文档").click()
    expect(page.get_by_role("gridcell", name="000_8e3a739afda006bb.txt")).to_be_visible()
    expect(page.get_by_role("gridcell", name="004_7b7eee9865cdd99f.txt")).to_be_visible()
    page.get_by_role("tab", name="问答").click()


def test_documents_table_fits_a_phone_screen(page: Page) -> None:
    page.set_viewport_size(PHONE)
    try:
        page.get_by_role("tab", name="文档").click()
        expect(page.get_by_role("gridcell", name="000_8e3a739afda006bb.txt")).to_be_visible()
        page.wait_for_function(TABLE_FITS_JS, timeout=10_000)
        expect(page.get_by_role("columnheader", name="添加时间")).to_be_in_viewport(ratio=1)
    finally:
        page.set_viewport_size(DESKTOP)
        page.get_by_role("tab", name="问答").click()


def test_upload_shows_one_progress_bar_then_ask(page: Page, tmp_path: Path) -> None:
    path = tmp_path / FICTIONAL_NAME
    path.write_text(FICTIONAL_TEXT, encoding="utf-8")
    page.get_by_role("tab", name="文档").click()
    page.locator("#rag-upload input[type=file]").set_input_files(str(path))
    # Gradio shows the stem and the extension in separate elements (read back as "yunwu_county .txt")
    stem, _, suffix = FICTIONAL_NAME.rpartition(".")
    expect(page.locator("#rag-upload")).to_contain_text(re.compile(rf"{re.escape(stem)}\s*\.{suffix}"))
    page.evaluate(WATCH_PROGRESS_JS)
    page.get_by_role("button", name="添加到索引").click()
    expect(page.locator("#rag-report")).to_contain_text(f"已添加 {FICTIONAL_NAME}")
    assert page.evaluate("window.ragWatch.disconnect(), window.ragMostTrackers") == 1
    expect(page.get_by_role("gridcell", name=FICTIONAL_NAME)).to_be_visible()
    expect(page.locator("#rag-status")).to_contain_text("3 个文档")
    page.get_by_role("tab", name="问答").click()
    page.locator("#rag-clear").click()  # a fresh conversation: no follow-up folding
    expect(page.locator("#rag-chat .rag-answer")).to_have_count(0)
    ask_in_page(page, FICTIONAL_QUESTION)
    expect(page.locator(FINISHED).last).to_contain_text(FICTIONAL_ANSWER)
    expect(page.locator("#rag-chat .rag-source mark").last).to_contain_text("紫色茶树3721亩")


def test_removing_a_document_asks_first(page: Page) -> None:
    page.get_by_role("tab", name="文档").click()
    page.get_by_label("选择要删除的文档").click()
    page.get_by_role("option", name=FICTIONAL_NAME).click()
    page.get_by_role("button", name="删除文档").click()
    question = page.get_by_text(f"确定要从索引中删除 {FICTIONAL_NAME} 吗")
    expect(question).to_be_visible()
    page.get_by_role("button", name="取消").click()
    expect(question).to_be_hidden()
    expect(page.get_by_role("gridcell", name=FICTIONAL_NAME)).to_be_visible()  # nothing removed
    page.get_by_role("button", name="删除文档").click()
    page.get_by_role("button", name="确认删除").click()
    expect(page.locator("#rag-report")).to_contain_text(f"已删除 {FICTIONAL_NAME}")
    expect(page.get_by_role("gridcell", name=FICTIONAL_NAME)).to_have_count(0)
    expect(page.locator("#rag-status")).to_contain_text("2 个文档")
    page.get_by_role("tab", name="问答").click()


def test_chat_trash_icon_also_forgets_the_session(page: Page) -> None:
    page.locator("#rag-chat button[aria-label='清空对话']").click()
    expect(page.locator("#rag-chat .rag-answer")).to_have_count(0)
    ask_in_page(page, "左权县有机作物种了多少亩？")
    expect(page.locator(FINISHED)).to_have_count(1)
    expect(page.locator("#rag-chat .rag-answer").last).to_contain_text("8万亩")


# --- the kept conversation, 答案有误, collections ------------------------------------------------

FIRST = "左雲縣一共有多少家活性炭企業？"
FOLLOW_UP = "其中规模以上的有几家？"
TRADITIONAL_SEED = "004_7b7eee9865cdd99f.txt"
API_COLLECTION = "yunwu"
API_DOC = "wuling_notes.txt"
# The browser's copy of a conversation holding an answer: its source card alone is over 1,000 characters
# once encrypted, while an empty one (after 新对话) is about 100.
KEPT_ANSWER_JS = """() => Object.keys(localStorage).filter((k) => k.startsWith('rag-chat-'))
  .some((k) => (localStorage.getItem(k) || '').length > 1000)"""

# The browser's copy of the conversations (encrypted) as one string, and whether it differs from an earlier
# one: the page writes it after an event's outputs are shown, so a reload must wait for the write.
STORED_JS = """() => Object.keys(localStorage).filter((k) => k.startsWith('rag-chat-')).sort()
  .map((k) => localStorage.getItem(k)).join()"""
STORED_CHANGED_JS = """(kept) => Object.keys(localStorage).filter((k) => k.startsWith('rag-chat-')).sort()
  .map((k) => localStorage.getItem(k)).join() !== kept"""


@pytest.fixture(scope="module")
def api_collection(server: Server) -> Iterator[str]:
    """A collection made through the REST API after the page was opened, holding the fictional county only."""
    api = server.url + "api/collections"
    created = httpx.post(api, json={"name": API_COLLECTION}, timeout=120)
    assert created.status_code == 201, created.text
    sent = [("files", (FICTIONAL_NAME, FICTIONAL_TEXT.encode(), "text/plain"))]
    uploaded = httpx.post(f"{api}/{API_COLLECTION}/documents", files=sent, timeout=120)
    assert uploaded.status_code == 200, uploaded.text
    yield API_COLLECTION
    httpx.delete(f"{api}/{API_COLLECTION}", timeout=120)


def storage_settled(page: Page, kept: str) -> None:
    """Wait until the browser's copy of the conversations differs from `kept` and then stays the same for
    half a second (an earlier event's write may land first)."""
    page.wait_for_function(STORED_CHANGED_JS, arg=kept)
    last = page.evaluate(STORED_JS)
    for _ in range(20):
        page.wait_for_timeout(500)
        now = page.evaluate(STORED_JS)
        if now == last:
            return
        last = now


def choose_collection(page: Page, name: str) -> None:
    page.locator("#rag-collection input").click()  # opening the picker reads the collections again
    page.get_by_role("option", name=name, exact=True).click()


def test_the_conversation_survives_a_reload_and_a_follow_up_uses_it(page: Page, server: Server) -> None:
    page.locator("#rag-clear").click()  # 新对话: the kept conversation is forgotten too
    expect(page.locator("#rag-chat .rag-answer")).to_have_count(0)
    ask_in_page(page, FIRST)
    expect(page.locator(FINISHED)).to_have_count(1)
    page.wait_for_function(KEPT_ANSWER_JS)
    page.reload()
    expect(page.locator(FINISHED)).to_have_count(1)  # the answer before 新对话 is not back
    expect(page.locator(FINISHED).last).to_contain_text("14家")
    ask_in_page(page, FOLLOW_UP)
    expect(page.locator(FINISHED)).to_have_count(2)
    expect(page.locator(FINISHED).last).to_contain_text("7家")
    # 答案有误 on the follow-up: the record names the question before the reload as its history.
    wrong = page.locator("#rag-chat .rag-wrong").last
    answer_id = (wrong.get_attribute("id") or "").removesuffix("-wrong")
    wrong.click()
    expect(page.locator("#rag-feedback").first).to_contain_text(FOLLOW_UP)
    page.fill("#rag-feedback-correct textarea", "7家（规模以上）")
    page.locator("#rag-feedback-send").click()
    expect(page.locator("#rag-feedback-note")).to_contain_text("已记录")
    expect(page.locator("#rag-feedback-correct")).to_be_hidden()
    lines = (server.index_dir / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[-1])
    assert (record["id"], record["collection"], record["question"]) == (answer_id, "default", FOLLOW_UP)
    assert record["history"] == [FIRST] and record["correct_answer"] == "7家（规模以上）"
    assert record["cited"] and record["cited"][0].startswith(f"{TRADITIONAL_SEED} ¶")


def test_a_collection_made_through_the_api_is_offered_and_answers_only_from_itself(
    page: Page, api_collection: str
) -> None:
    choose_collection(page, api_collection)
    expect(page.locator("#rag-status")).to_contain_text("1 个文档")
    expect(page.locator("#rag-chat .rag-answer")).to_have_count(0)  # its own conversation
    ask_in_page(page, FICTIONAL_QUESTION)
    expect(page.locator(FINISHED).last).to_contain_text(FICTIONAL_ANSWER)
    ask_in_page(page, FIRST)  # the seeds are in the other collection
    expect(page.locator(FINISHED)).to_have_count(2)
    expect(page.locator(FINISHED).last).to_contain_text("文档中没有找到答案")
    page.get_by_role("tab", name="文档").click()
    expect(page.get_by_role("gridcell", name=FICTIONAL_NAME)).to_be_visible()
    expect(page.get_by_role("gridcell", name=TRADITIONAL_SEED)).to_have_count(0)


def test_an_api_upload_and_removal_show_in_the_open_documents_list(
    page: Page, server: Server, api_collection: str
) -> None:
    documents = f"{server.url}api/collections/{api_collection}/documents"
    sent = [("files", (API_DOC, "雾岭县概况\n\n雾岭县是一个虚构的县。".encode(), "text/plain"))]
    assert httpx.post(documents, files=sent, timeout=120).status_code == 200
    expect(page.get_by_role("gridcell", name=API_DOC)).to_be_visible()  # no click: the page notices
    expect(page.locator("#rag-status")).to_contain_text("2 个文档")
    assert httpx.delete(f"{documents}/{API_DOC}", timeout=120).status_code == 200
    expect(page.get_by_role("gridcell", name=API_DOC)).to_have_count(0)
    expect(page.locator("#rag-status")).to_contain_text("1 个文档")
    page.get_by_role("tab", name="问答").click()


def test_each_collection_keeps_its_own_conversation(page: Page, api_collection: str) -> None:
    choose_collection(page, "default")
    expect(page.locator(FINISHED)).to_have_count(2)
    expect(page.locator(FINISHED).last).to_contain_text("7家")
    expect(page.locator("#rag-status")).to_contain_text("2 个文档")
    kept = page.evaluate(STORED_JS)
    choose_collection(page, api_collection)
    expect(page.locator(FINISHED)).to_have_count(2)
    storage_settled(page, kept)  # the switch reached the browser's storage
    page.reload()  # back on the collection it was on, with its conversation
    expect(page.locator("#rag-collection input")).to_have_value(api_collection)
    expect(page.locator(FINISHED)).to_have_count(2)
    expect(page.locator(FINISHED).first).to_contain_text(FICTIONAL_ANSWER)
    expect(page.locator("#rag-status")).to_contain_text("1 个文档")


def test_a_scanned_upload_shows_its_reading_then_joins_the_list_and_opens_from_its_collection(
    page: Page, server: Server, api_collection: str, tmp_path: Path
) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    from scan_support import small_scan_pdf

    scan = tmp_path / "scan.pdf"
    scan.write_bytes(small_scan_pdf(["全县新建村级卫生室46个。", "全县新增养老床位380张。"]))
    choose_collection(page, api_collection)
    page.get_by_role("tab", name="文档").click()
    page.locator("#rag-upload input[type=file]").set_input_files(str(scan))
    expect(page.locator("#rag-upload")).to_contain_text(re.compile(r"scan\s*\.pdf"))
    page.get_by_role("button", name="添加到索引").click()
    expect(page.locator("#rag-report")).to_contain_text("2 页待识别")
    expect(page.locator("#rag-status")).to_contain_text(re.compile(r"(等待识别|识别中)：scan\.pdf"))
    # No click from here: the page's poll brings the document and clears the reading from the status line.
    expect(page.get_by_role("gridcell", name="scan.pdf")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#rag-status")).to_contain_text("2 个文档")
    expect(page.locator("#rag-status")).not_to_contain_text("识别", timeout=TIMEOUT_MS)
    page.get_by_role("tab", name="问答").click()
    ask_in_page(page, "全县新增养老床位多少张？")
    expect(page.locator(FINISHED).last).to_contain_text("380", timeout=TIMEOUT_MS)
    link = page.locator("#rag-chat .rag-open").last
    href = f"api/collections/{api_collection}/documents/scan.pdf/source#page=2"
    expect(link).to_have_attribute("href", href)
    opened = page.request.get(server.url + href.split("#")[0])
    assert opened.status == 200 and opened.body() == scan.read_bytes()
