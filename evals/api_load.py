"""Load on the HTTP API: concurrent OpenAI-client users asking seed questions while the index changes.

    python evals/api_load.py [--clients 16] [--questions 10] [--out evals/reports]      (part of make bench)

Starts `rag serve --data DIR` (with an API key) in a child process on loopback over a fresh data folder
(both seeds and one extra document). First the answerable seed questions are asked one at a time until
--pool of them are answered right; each one's cited paragraphs on the quiet server are kept. Then the
clients run, each in its own thread with its own `openai.OpenAI` client, asking their share of that pool
through /v1/chat/completions, while an admin uploads a new document and removes the extra one through the
REST API. Prints latency p50/p95, errors, and answers cited wrongly (refused, wrong, or citing other
paragraphs than on the quiet server); writes api_load.json. Nothing is asserted: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import openai  # noqa: E402

from rag.evaluation import QAItem, answer_correct, item_from_dict, percentile  # noqa: E402

QUESTIONS = ROOT / "evals" / "seeds_qa.jsonl"
READY_TIMEOUT_S = 300.0  # building the seeds' index and loading the model on a busy 2-core machine
CLIENT_TIMEOUT_S = 300.0  # one question may wait behind the whole queue of the others
EXTRA_NAME = "removed_during_load.txt"
EXTRA_TEXT = "云雾县概况\n\n云雾县是一个虚构的县，只用于测试。\n\n2024年，云雾县共种植紫色茶树3721亩。\n"
UPLOAD_NAME = "uploaded_during_load.txt"
UPLOAD_TEXT = "青石镇概况\n\n青石镇是一个虚构的镇，只用于负载测试。\n\n2024年，青石镇修建了石板路58公里。\n"


@dataclass
class Tally:
    """What the clients saw, shared by their threads."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def answerable() -> list[QAItem]:
    """The single-document, answerable, non-follow-up seed questions."""
    items = [
        item_from_dict(json.loads(line), n) for n, line in enumerate(QUESTIONS.open(encoding="utf-8"), 1)
    ]
    return [i for i in items if not i.unanswerable and i.doc != "*" and not i.history and i.answers]


def cited(message: Any) -> list[tuple[str, int]]:
    return [(r["doc"], r["paragraph"]) for r in dict(message.model_extra or {}).get("references") or []]


def check(item: QAItem, message: Any) -> str:
    """'' when the reply is found, answers right and cites the question's document first; else why not."""
    extra = dict(message.model_extra or {})
    refs = cited(message)
    if not extra.get("found"):
        return f"{item.id}: refused"
    if not refs or refs[0][0] != item.doc:
        return f"{item.id}: cites {refs[0][0] if refs else 'nothing'}, expected {item.doc}"
    if not answer_correct(item, message.content or ""):
        return f"{item.id}: answer lacks {item.answers}"
    return ""


def baseline(
    base: str, key: str, items: list[QAItem], size: int
) -> tuple[dict[str, list[tuple[str, int]]], int]:
    """Ask the questions one at a time on a quiet server: the first `size` answered right, each with the
    paragraphs it cites (what every answer under load must cite too), and how many were passed over."""
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT_S)
    quiet: dict[str, list[tuple[str, int]]] = {}
    passed_over = 0
    for item in items:
        reply = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": item.question}]
        )
        if check(item, reply.choices[0].message):
            passed_over += 1
            continue
        quiet[item.id] = cited(reply.choices[0].message)
        if len(quiet) == size:
            break
    return quiet, passed_over


def client_run(
    base: str, key: str, items: list[QAItem], quiet: dict[str, list[tuple[str, int]]], tally: Tally
) -> None:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT_S)
    for item in items:
        start = time.perf_counter()
        try:
            reply = client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": item.question}]
            )
        except openai.OpenAIError as exc:
            with tally.lock:
                tally.errors.append(f"{item.id}: {type(exc).__name__}: {exc}")
            continue
        seconds = time.perf_counter() - start
        message = reply.choices[0].message
        problem = check(item, message)
        if not problem and cited(message) != quiet[item.id]:
            problem = f"{item.id}: cites {cited(message)}, on a quiet server {quiet[item.id]}"
        with tally.lock:
            tally.latencies.append(seconds)
            if problem:
                tally.wrong.append(problem)


def change_documents(base: str, key: str, log: list[str]) -> None:
    """Upload one document and remove another while the clients ask."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=CLIENT_TIMEOUT_S) as admin:
        start = time.perf_counter()
        r = admin.post(
            "/api/collections/default/documents",
            files=[("files", (UPLOAD_NAME, UPLOAD_TEXT.encode("utf-8"), "text/plain"))],
        )
        log.append(f"upload {UPLOAD_NAME}: HTTP {r.status_code} in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        r = admin.delete(f"/api/collections/default/documents/{EXTRA_NAME}")
        log.append(f"remove {EXTRA_NAME}: HTTP {r.status_code} in {time.perf_counter() - start:.1f} s")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data: Path, port: int, key: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ, RAG_API_KEYS=f"admin:{key}", NO_PROXY="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False"
    )
    with log_path.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "serve", "--data", str(data), "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_ready(base: str, key: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rag serve exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            if (
                httpx.get(
                    f"{base}/healthz", headers={"Authorization": f"Bearer {key}"}, timeout=5
                ).status_code
                == 200
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"rag serve not ready after {READY_TIMEOUT_S:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--questions", type=int, default=10, help="questions per client")
    parser.add_argument("--pool", type=int, default=40, help="distinct seed questions the clients share")
    parser.add_argument("--out", default=str(ROOT / "evals" / "reports"))
    args = parser.parse_args(argv)

    from rag.engine import Engine

    work = Path(tempfile.mkdtemp(prefix="rag-api-load-"))
    docs = work / "docs"
    docs.mkdir()
    for seed in sorted((ROOT / "seeds").iterdir()):
        (docs / seed.name).write_bytes(seed.read_bytes())
    (docs / EXTRA_NAME).write_text(EXTRA_TEXT, encoding="utf-8")
    start = time.perf_counter()
    Engine.build([docs], index_dir=work / "data")
    print(f"built the data folder in {time.perf_counter() - start:.1f} s", flush=True)

    key = secrets.token_urlsafe(24)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / "serve.log"
    proc = start_server(work / "data", port, key, log_path)
    try:
        wait_ready(base, key, proc, log_path)
        items = answerable()
        quiet, passed_over = baseline(base, key, items, args.pool)
        by_id = {i.id: i for i in items}
        pool = [by_id[i] for i in quiet]
        print(
            f"{len(pool)} questions answered right on the quiet server ({passed_over} passed over)",
            flush=True,
        )
        tally = Tally()
        changes: list[str] = []
        threads = [
            threading.Thread(
                target=client_run,
                args=(
                    base,
                    key,
                    [pool[(c * args.questions + q) % len(pool)] for q in range(args.questions)],
                    quiet,
                    tally,
                ),
            )
            for c in range(args.clients)
        ]
        writer = threading.Thread(target=change_documents, args=(base, key, changes))
        start = time.perf_counter()
        for t in threads:
            t.start()
        writer.start()
        for t in [*threads, writer]:
            t.join()
        wall = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    asked = args.clients * args.questions
    ms = sorted(s * 1000 for s in tally.latencies)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "clients": args.clients,
        "questions": asked,
        "answered": len(ms),
        "errors": len(tally.errors),
        "wrong_citations": len(tally.wrong),
        "pool": len(quiet),
        "pool_passed_over": passed_over,
        "p50_ms": round(percentile(ms, 50), 1) if ms else None,
        "p95_ms": round(percentile(ms, 95), 1) if ms else None,
        "questions_per_s": round(len(ms) / wall, 2),
        "wall_s": round(wall, 1),
        "index_changes": changes,
        "error_samples": tally.errors[:5],
        "wrong_samples": tally.wrong[:10],
    }
    print(
        f"{asked} questions from {args.clients} clients in {wall:.1f} s ({report['questions_per_s']} /s): "
        f"p50 {report['p50_ms']} ms, p95 {report['p95_ms']} ms, errors {len(tally.errors)}, "
        f"wrongly cited {len(tally.wrong)}"
    )
    for line in changes + tally.errors[:5] + tally.wrong[:10]:
        print("  " + line)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "api_load.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
