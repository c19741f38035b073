"""Question latency while a large document is being indexed: the chat must keep answering.

    python evals/upload_latency.py [--mb 3] [--questions 30]          (make bench)

Builds a fresh index of seeds/ in a temporary folder, serves it with `rag serve`, and asks the first
--questions questions of evals/seeds_qa.jsonl through gradio_client's /ask one after another: p50 and p95.
Then it uploads a generated Chinese text of --mb megabytes through /upload and asks the same questions
twice while the server indexes it: at once (the server reads and splits the file: planning), and again
once the embedding child has started (the upload still running at the end, which it checks).
Target: the p95 during the upload within 2x of the p95 without. Prints them; writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.evaluation import percentile  # noqa: E402
from rag.journal import BATCH_WINDOWS  # noqa: E402

TARGET_RATIO = 2.0  # the bound: p95 while indexing at most twice the p95 of an idle server
READY_TIMEOUT_S = 240.0  # loading the model and the index on 2 busy cores
INDEXING_STARTS_S = 120.0  # longest wait for the upload to reach the index's journal


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def large_text(megabytes: float) -> str:
    """Generated Chinese prose: the seed paragraphs again and again, each copy with its own section
    number and figures, so no two paragraphs are the same."""
    paragraphs = [
        p.strip()
        for doc in sorted((ROOT / "seeds").glob("*.txt"))
        for p in doc.read_text("utf-8").split("\n")
        if len(p.strip()) > 20
    ]
    out: list[str] = []
    size, i = 0, 0
    while size < megabytes * 1_000_000:
        base = paragraphs[i % len(paragraphs)]
        shifted = "".join(str((int(c) + i) % 10) if c.isdigit() else c for c in base)
        piece = f"第{i + 1}节 {shifted}"
        out.append(piece)
        size += len(piece.encode("utf-8")) + 2
        i += 1
    return "\n\n".join(out) + "\n"


def wait_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"rag serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "healthz", timeout=5) as r:
                if json.loads(r.read()).get("status") == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"rag serve not ready after {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


def timed_questions(client: Any, questions: list[str]) -> list[float]:
    seconds = []
    for q in questions:
        start = time.perf_counter()
        client.predict(q, "extractive", api_name="/ask")
        seconds.append(time.perf_counter() - start)
    return seconds


def indexing_jobs(index: Path) -> list[Path]:
    journal = index / "journal"
    return [p for p in journal.iterdir() if not p.name.startswith(".")] if journal.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=3.0, help="size of the uploaded text (default 3 MB)")
    parser.add_argument("--questions", type=int, default=30, help="questions per measurement (default 30)")
    args = parser.parse_args(argv)

    from gradio_client import Client, handle_file

    questions = [
        json.loads(line)["question"]
        for line in (ROOT / "evals" / "seeds_qa.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ][: args.questions]
    tmp = Path(tempfile.mkdtemp(prefix="rag-upload-latency-"))
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", NO_PROXY="127.0.0.1,localhost")
    server: subprocess.Popen[bytes] | None = None
    try:
        index = tmp / "index"
        rag = [sys.executable, "-m", "rag.cli"]
        subprocess.run(
            [*rag, "build", str(ROOT / "seeds"), "--index", str(index), "--quiet"], check=True, cwd=ROOT
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        log = tmp / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [*rag, "serve", "--index", str(index), "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_ready(url, server, log)
        asker = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        timed_questions(asker, questions[:2])  # warm-up: first requests load word lists and caches
        idle = timed_questions(asker, questions)

        big = tmp / "large.txt"
        big.write_text(large_text(args.mb), "utf-8")
        uploader = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        submitted = time.perf_counter()
        upload = uploader.submit([handle_file(str(big))], api_name="/upload")
        planning = timed_questions(asker, questions)
        while not indexing_jobs(index) and time.perf_counter() - submitted < INDEXING_STARTS_S:
            if upload.done():
                raise SystemExit(f"the upload ended before indexing began: {upload.result()}")
            time.sleep(0.2)
        planned_after = time.perf_counter() - submitted
        embedding = timed_questions(asker, questions)
        still_running = not upload.done() and bool(indexing_jobs(index))
        batches = sum(len(list(job.glob("d*-b*.npy"))) for job in indexing_jobs(index))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    idle_p95 = percentile(idle, 95)
    busy_p95 = percentile(planning + embedding, 95)
    ratio = busy_p95 / idle_p95 if idle_p95 else float("inf")
    print(f"upload of {args.mb:g} MB of Chinese text; {len(questions)} questions each (seconds)")
    for label, seconds in (
        ("no upload", idle),
        ("upload, at once", planning),
        ("upload, embedding", embedding),
    ):
        print(
            f"  {label:<18} p50 {percentile(seconds, 50):.3f}  p95 {percentile(seconds, 95):.3f}  "
            f"max {max(seconds):.3f}"
        )
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(
        f"p95 without an upload {idle_p95:.3f} s, during it {busy_p95:.3f} s: ratio {ratio:.2f} (target <= 2: {verdict})"
    )
    print(
        f"the embedding child started {planned_after:.1f} s after the upload; still indexing at the end: "
        f"{still_running} ({batches} batches of {BATCH_WINDOWS} windows embedded by then)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
