"""Side-by-side retrieval benchmark on the dev QA set, in one run:

(a) vanilla LlamaIndex: the raw file as one Document, VectorStoreIndex with the default
    SentenceSplitter (1024/200) and top_k=2, same embedder (in-memory vector store);
(b) BM25 alone, (c) dense alone (our chunks in Chroma), (d) ours (hybrid + extractive answer).

Baselines have no answer step, so their "answer" is the cited context itself (generous to them);
they never refuse. Writes benchmarks/results/compare.json and compare.png.
Run: .venv/bin/python benchmarks/compare.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.evaluate import _norm, keywords_ok, load_cases, percentile  # noqa: E402


def score(name: str, cases: list[Any], run: Any) -> dict[str, Any]:
    ranks, ok, chars, ms, refusals = [], [], [], [], []
    run(cases[0].question, cases[0].history)  # warm-up
    for c in cases:
        t0 = time.perf_counter()
        texts, answer, answered = run(c.question, c.history)
        ms.append((time.perf_counter() - t0) * 1000)
        if not c.answerable:
            refusals.append(not answered)
            continue
        ranks.append(next((i + 1 for i, t in enumerate(texts) if _norm(c.passage) in _norm(t)), None))
        ok.append(answered and keywords_ok(answer, c.answer_any))
        chars.append(sum(len(t) for t in texts[:3]))
    n = len(ranks)
    return {
        "name": name,
        "hit@1": round(sum(1 for r in ranks if r and r <= 1) / n, 3),
        "hit@3": round(sum(1 for r in ranks if r and r <= 3) / n, 3),
        "mrr": round(sum(1 / r for r in ranks if r) / n, 3),
        "cited_chars_mean": round(statistics.mean(chars), 1),
        "answer_accuracy": round(sum(ok) / n, 3),
        "refusal_accuracy": round(sum(refusals) / max(1, len(refusals)), 3),
        "p50_ms": round(percentile(ms, 0.5), 2),
    }


def main() -> int:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core import Settings as LISettings
    from llama_index.core.schema import QueryBundle

    from chatbot.core import Chatbot
    from chatbot.settings import Settings

    cases = load_cases(ROOT / "tests" / "data" / "qa_dev.jsonl")
    bot = Chatbot(Settings())
    r = bot.retriever
    results = []

    LISettings.embed_model = bot.embedder
    raw = (ROOT / "corpus" / "ai-investments-2024.fr.txt").read_text(encoding="utf-8")
    vanilla = VectorStoreIndex.from_documents([Document(text=raw)]).as_retriever(similarity_top_k=2)

    def run_vanilla(q: str, h: Any) -> tuple[list[str], str, bool]:
        texts = [n.node.get_content() for n in vanilla.retrieve(q)]
        return texts, "\n".join(texts), True

    def run_bm25(q: str, h: Any) -> tuple[list[str], str, bool]:
        texts = [r.chunks[n.node.node_id].text for n in r._bm25.retrieve(q)][:3]
        return texts, "\n".join(texts), True

    def run_dense(q: str, h: Any) -> tuple[list[str], str, bool]:
        vec = r.embed_query(q)
        texts = [r.chunks[n.node.node_id].text for n in r._dense.retrieve(QueryBundle(q, embedding=vec.tolist()))][:3]
        return texts, "\n".join(texts), True

    def run_ours(q: str, h: Any) -> tuple[list[str], str, bool]:
        a = bot.answer(q, h)
        return [c.text for c in a.citations], a.answer, a.answered

    for name, fn in [("vanilla LlamaIndex (1024/200, top 2)", run_vanilla), ("BM25 alone", run_bm25), ("dense alone", run_dense), ("ours (hybrid + extractive)", run_ours)]:
        results.append(score(name, cases, fn))
        print(json.dumps(results[-1], ensure_ascii=False))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps({"questions": len(cases), "embedder": bot.embedder.model_id, "results": results}, indent=2, ensure_ascii=False))
    _chart(results, out / "compare.png")
    print(f"wrote {out / 'compare.json'} and {out / 'compare.png'}")
    return 0


def _chart(results: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart")
        return
    metrics = ["hit@1", "hit@3", "mrr", "answer_accuracy", "refusal_accuracy"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(results)
    for i, res in enumerate(results):
        ax1.bar([m + i * width for m in range(len(metrics))], [res[k] for k in metrics], width, label=res["name"])
    ax1.set_xticks([m + 0.4 - width / 2 for m in range(len(metrics))], metrics)
    ax1.set_ylim(0, 1.05)
    ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4)
    ax1.set_title("Dev QA set")
    ax2.bar(range(len(results)), [r["cited_chars_mean"] for r in results], color=["C0", "C1", "C2", "C3"])
    ax2.set_xticks(range(len(results)), ["vanilla", "bm25", "dense", "ours"])
    ax2.set_title("characters cited (top 3)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
