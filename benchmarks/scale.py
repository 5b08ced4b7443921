"""How the index and the answers scale with the number of documents, on an embedded store and on
a real `chroma run` server.

The corpus: the shipped article and the three test articles (tests/data/articles), repeated under
distinct ids until there are N documents. Each copy gets a first line of its own ("Archive copy
17 of …") so its id, key and headline are new while the rest of its text is the original's: the
vector cache (index/vector_cache.py) then spares re-embedding the repeated text, as it would for a
site re-indexing pages it has seen. The time of adding one article with text nobody embedded
before (numbers and names made up for this run) is measured apart, at 2 documents and at N.

Measured: time of each single-document add as the index grows; the bot's load time and RSS; the
answer latency (p50/p95 of `Chatbot.answer`, whole pipeline) scoped to one document and unscoped,
at 1 document and at N; the RSS of a `serve` process at N after answering. Writes
benchmarks/results/scale.json and scale.png.
Run: .venv/bin/python benchmarks/scale.py [--docs 1000] [--server-docs 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from chatbot.settings import Settings  # noqa: E402

BASES = [ROOT / "corpus" / "ai-investments-2024.fr.txt", *sorted((ROOT / "tests" / "data" / "articles").iterdir())]
# per base article: questions it answers (scoped runs ask these of a copy of it)
QUESTIONS = {
    "ai-investments-2024.fr": ["How much did Databricks raise?", "Combien les startups d'IA ont-elles levé en 2024 ?"],
    "harbour-telescope.en": ["Who is the director of the observatory?", "How much did the telescope cost?"],
    "zugverkehr-nordbahn.de": ["Wie hoch war der Verlust der Nordbahn-Nachtzüge?", "How many passengers used the night train?"],
    "orion-fund-notes": ["How many companies has the Orion fund invested in?", "Who leads the fundraising?"],
}
REPEAT = 5  # each question this many times per measurement


def base_texts() -> list[tuple[str, str, str]]:
    """(stem, suffix, text) of each base article; HTML pages as extracted text (their copies get their own ids)."""
    from index.build import read_document

    out = []
    for path in BASES:
        doc = read_document(path)
        text = doc.text or doc.raw
        suffix = ".md" if path.suffix == ".md" else ".txt"
        out.append((path.name.split(".html")[0].removesuffix(".md").removesuffix(".txt"), suffix, text))
    return out


def copy_file(folder: Path, n: int, base: tuple[str, str, str]) -> Path:
    stem, suffix, text = base
    path = folder / f"copy-{n:04d}-{stem}{suffix}"
    lead = f"# Archive copy {n}\n\n" if suffix == ".md" else ""
    body = text if suffix == ".md" else f"{text.splitlines()[0]} (archive copy {n})\n" + "\n".join(text.splitlines()[1:])
    path.write_text(lead + body, encoding="utf-8")
    return path


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 1)


def latency(bot: Any, scopes: list[tuple[str | None, str]]) -> dict[str, float]:
    """p50/p95 in ms of whole answers for (scope, question) pairs, after one warm-up each."""
    for scope, q in scopes:
        bot.scoped(scope).answer(q)
    times = []
    for _ in range(REPEAT):
        for scope, q in scopes:
            t0 = time.perf_counter()
            bot.scoped(scope).answer(q)
            times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": pct(times, 50), "p95_ms": pct(times, 95), "n": len(times)}


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def fresh_article(folder: Path, n: int) -> Path:
    """An article with text nobody embedded before (numbers and names of its own, this run's)."""
    path = folder / f"fresh-{n}.txt"
    n = n * 1_000_003 + int(time.time() * 1000) % 1_000_000
    path.write_text(
        f"La coopérative Velin{n} ouvre une usine de vélos cargo à Lyon\n"
        f"La coopérative Velin{n} a inauguré mardi une usine de {n + 40} salariés dans le quartier de Gerland. "
        f"Elle prévoit de produire {n * 7 + 1200} vélos cargo par an, vendus entre 3 000 et 5 500 euros.\n"
        f"Le projet a coûté {n % 9 + 11} millions d'euros, financés pour moitié par la région.\n"
        f"« Nous voulons fabriquer localement ce que nous importions d'Asie », a déclaré sa présidente, Aline Marchetti{n}.\n",
        encoding="utf-8",
    )
    return path


def cli_add(env: dict[str, str], path: Path, doc_id: str) -> float:
    """Seconds `python app.py index add PATH` takes, as a user meets it (a new process, models
    loaded); the document is removed again afterwards."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "index", "add", str(path)], env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    subprocess.run([sys.executable, str(ROOT / "app.py"), "index", "remove", doc_id], env={**os.environ, **env}, capture_output=True, cwd=ROOT, check=True)
    return round(seconds, 2)


def run_series(label: str, settings: Settings, docs: int, work: Path, env: dict[str, str]) -> dict[str, Any]:
    from chatbot.core import Chatbot
    from index.build import build
    from index.embed import load_embedder

    embedder = load_embedder(settings.embed_model, settings.embed_fallbacks, settings.embed_threads)
    out: dict[str, Any] = {"label": label, "documents": docs}
    files = work / f"files-{label}"
    files.mkdir(parents=True, exist_ok=True)
    bases = base_texts()

    def fresh_adds(n: int) -> tuple[float, float]:
        """(in this process, as `python app.py index add`) seconds to add an article nobody embedded."""
        t0 = time.perf_counter()
        build(settings, [fresh_article(files, n)], embedder=embedder)
        seconds = round(time.perf_counter() - t0, 3)
        build(settings, remove=[f"fresh-{n}"], embedder=embedder)
        return seconds, cli_add(env, fresh_article(files, n + 1), f"fresh-{n + 1}")

    build(settings, embedder=embedder)  # the shipped article: 1 document
    out["fresh_add_at_2_s"], out["cli_add_at_2_s"] = fresh_adds(1)

    t0 = time.perf_counter()
    bot = Chatbot(settings, embedder=embedder)
    out["load_at_1_s"] = round(time.perf_counter() - t0, 2)
    one: list[tuple[str | None, str]] = [(None, q) for q in QUESTIONS["ai-investments-2024.fr"]]
    out["query_at_1"] = latency(bot, one)
    print(f"[{label}] 1 document: {out['query_at_1']}", flush=True)

    adds: list[tuple[int, float]] = []
    for n in range(1, docs):
        path = copy_file(files, n, bases[n % len(bases)])
        t0 = time.perf_counter()
        build(settings, [path], embedder=embedder)
        adds.append((n + 1, round(time.perf_counter() - t0, 4)))
        if (n + 1) % 100 == 0:
            recent = [s for _, s in adds[-100:]]
            print(f"[{label}] {n + 1} documents; last 100 adds p50 {statistics.median(recent):.3f}s", flush=True)
    out["adds"] = adds

    out["fresh_add_at_n_s"], out["cli_add_at_n_s"] = fresh_adds(3)

    t0 = time.perf_counter()
    bot = Chatbot(settings, embedder=embedder)
    out["load_at_n_s"] = round(time.perf_counter() - t0, 2)
    ids = [d["id"] for d in bot.documents()]
    scoped = []
    for stem, qs in QUESTIONS.items():
        copies = [i for i in ids if i.endswith(stem)][-3:]  # three copies of each base: different scopes, cold then cached
        scoped += [(c, q) for c in copies for q in qs]
    out["query_scoped_at_n"] = latency(bot, scoped)
    out["query_unscoped_at_n"] = latency(bot, [(None, q) for qs in QUESTIONS.values() for q in qs])
    t0 = time.perf_counter()
    bot.scoped(ids[len(ids) // 2])
    out["first_scoped_view_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    out["bench_process_max_rss_mb"] = rss_mb()
    print(f"[{label}] {docs} documents: scoped {out['query_scoped_at_n']} unscoped {out['query_unscoped_at_n']}", flush=True)
    return out


def serve_rss(env: dict[str, str], question_doc: str) -> dict[str, float]:
    """RSS of `python app.py serve` on the index, when ready and after answering scoped questions."""
    import httpx

    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "serve", "--port", str(port)],
        env={**os.environ, **env, "CHATBOT_RATE_LIMIT_PER_MINUTE": "0"},
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    try:
        while True:
            try:
                if httpx.get(url + "/api/health", timeout=120).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
            if time.perf_counter() - t0 > 600:
                raise RuntimeError("the server did not become ready")
        ready = round(time.perf_counter() - t0, 1)
        at_ready = proc_rss_mb(proc.pid)
        for _ in range(20):
            httpx.post(url + "/api/ask", json={"question": "How much did Databricks raise?", "document": question_doc}, timeout=120)
        return {"ready_s": ready, "rss_ready_mb": at_ready, "rss_after_20_answers_mb": proc_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(30)


def chart(results: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        xs = [n for n, _ in r["adds"]]
        ys = [s for _, s in r["adds"]]
        a.plot(xs, ys, ".", ms=2, alpha=0.5, label=f"{r['label']}: each add")
    a.set_xlabel("documents in the index after the add")
    a.set_ylabel("seconds per single-document add")
    a.set_title("Adding one article (vector cache warm)")
    a.legend()
    labels, p50, p95 = [], [], []
    for r in results:
        for key, name in (("query_at_1", "1 doc"), ("query_scoped_at_n", f"{r['documents']} scoped"), ("query_unscoped_at_n", f"{r['documents']} all")):
            labels.append(f"{r['label']}\n{name}")
            p50.append(r[key]["p50_ms"])
            p95.append(r[key]["p95_ms"])
    xs2 = range(len(labels))
    b.bar([x - 0.2 for x in xs2], p50, 0.4, label="p50")
    b.bar([x + 0.2 for x in xs2], p95, 0.4, label="p95")
    b.set_xticks(list(xs2), labels, fontsize=7)
    b.set_ylabel("ms per answer (whole pipeline)")
    b.set_title("Answer latency")
    b.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=1000)
    p.add_argument("--server-docs", type=int, default=1000, help="documents on the `chroma run` server (0: skip)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    results = []
    try:
        emb = Settings(data_dir=work / "embedded")
        r = run_series("embedded", emb, args.docs, work, {"CHATBOT_DATA_DIR": str(emb.data_dir)})
        r["serve"] = serve_rss({"CHATBOT_DATA_DIR": str(emb.data_dir)}, "ai-investments-2024.fr")
        results.append(r)
        if args.server_docs:
            from tests.conftest import free_port
            from tests.test_store_server import ChromaServer

            chroma = ChromaServer(work / "chroma-server", free_port())
            chroma.start()
            try:
                srv = Settings(data_dir=work / "server-data", chroma_host="127.0.0.1", chroma_port=chroma.port)
                env = {"CHATBOT_DATA_DIR": str(srv.data_dir), "CHATBOT_CHROMA_HOST": "127.0.0.1", "CHATBOT_CHROMA_PORT": str(chroma.port)}
                r = run_series("chroma-run", srv, args.server_docs, work, env)
                r["serve"] = serve_rss(env, "ai-investments-2024.fr")
                r["chroma_server_rss_mb"] = proc_rss_mb(chroma.proc.pid) if chroma.proc else 0.0
                results.append(r)
            finally:
                chroma.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "results"
    summary = []
    for r in results:
        adds = [s for _, s in r["adds"]]
        first, last = adds[:100], adds[-100:]
        r["add_first_100_p50_s"] = round(statistics.median(first), 3) if first else None
        r["add_last_100_p50_s"] = round(statistics.median(last), 3) if last else None
        summary.append({k: v for k, v in r.items() if k != "adds"})
    (out / "scale.json").write_text(json.dumps({"machine": f"{os.cpu_count()} cores", "results": results}, indent=1) + "\n")
    chart(results, out / "scale.png")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
