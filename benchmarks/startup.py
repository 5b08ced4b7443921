"""Cold start, side by side with vanilla LlamaIndex, in one run (issue "Lean and fast"):

- cold `ask`: a fresh process answers one question (`python app.py ask --json`), against a fresh
  process running vanilla LlamaIndex retrieval only (same e5 embedder, default SentenceSplitter,
  Chroma PersistentClient, top-2) over the same raw file;
- cold `serve`: a fresh `python app.py serve` until /api/health answers 200;
- peak RSS of each process (wait4's ru_maxrss).

Each is run REPEAT times; medians are printed with the ratio ours / vanilla. Writes
benchmarks/results/startup.json and startup.png. Run: .venv/bin/python benchmarks/startup.py
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus" / "ai-investments-2024.fr.txt"
QUESTION = "How much did Databricks raise?"
REPEAT = int(os.environ.get("REPEAT", "5"))

VANILLA = r'''
import sys
sys.path.insert(0, sys.argv[1])
import chromadb
from chromadb.config import Settings
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.vector_stores.chroma import ChromaVectorStore
from index.embed import E5Embedding
client = chromadb.PersistentClient(path=sys.argv[2], settings=Settings(anonymized_telemetry=False))
embed = E5Embedding()
if sys.argv[3] == "build":
    col = client.get_or_create_collection("vanilla")
    vs = ChromaVectorStore(chroma_collection=col)
    VectorStoreIndex.from_documents([Document(text=open(sys.argv[4], encoding="utf-8").read())],
                                    storage_context=StorageContext.from_defaults(vector_store=vs), embed_model=embed)
else:
    vs = ChromaVectorStore(chroma_collection=client.get_collection("vanilla"))
    nodes = VectorStoreIndex.from_vector_store(vs, embed_model=embed).as_retriever(similarity_top_k=2).retrieve(sys.argv[4])
    print(len(nodes))
'''


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_to_healthy(env: dict[str, str]) -> float:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        while time.perf_counter() - t0 < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.05)
        raise SystemExit("serve did not become healthy in 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="startup-"))
    env = {**os.environ, "CHATBOT_DATA_DIR": str(work / "ours"), "ANONYMIZED_TELEMETRY": "False"}
    script = work / "vanilla.py"
    script.write_text(VANILLA, encoding="utf-8")
    subprocess.run([sys.executable, "app.py", "index"], env=env, check=True, cwd=ROOT, capture_output=True)
    subprocess.run([sys.executable, str(script), str(ROOT), str(work / "vanilla"), "build", str(CORPUS)], env=env, check=True, capture_output=True)
    ours, vanilla, serve = [], [], []
    for _ in range(REPEAT):
        ours.append(timed([sys.executable, "app.py", "ask", "--json", QUESTION], env))
        vanilla.append(timed([sys.executable, str(script), str(ROOT), str(work / "vanilla"), "query", QUESTION], env))
        serve.append(serve_to_healthy(env))
    med = lambda xs: round(statistics.median(xs), 3)  # noqa: E731
    result = {
        "repeat": REPEAT,
        "ours_ask_s": med([w for w, _ in ours]), "vanilla_ask_s": med([w for w, _ in vanilla]),
        "ours_rss_mb": med([m for _, m in ours]), "vanilla_rss_mb": med([m for _, m in vanilla]),
        "serve_healthy_s": med(serve),
    }
    result["ask_ratio"] = round(result["ours_ask_s"] / result["vanilla_ask_s"], 3)
    result["rss_ratio"] = round(result["ours_rss_mb"] / result["vanilla_rss_mb"], 3)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "startup.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
        a.bar(["ours\nask", "vanilla\nask", "ours\nserve→healthy"], [result["ours_ask_s"], result["vanilla_ask_s"], result["serve_healthy_s"]], color=["#2b6cb0", "#a0aec0", "#2f855a"])
        a.set_ylabel("seconds (median, cold)")
        b.bar(["ours", "vanilla"], [result["ours_rss_mb"], result["vanilla_rss_mb"]], color=["#2b6cb0", "#a0aec0"])
        b.set_ylabel("peak RSS, MB")
        fig.suptitle(f"cold start: ask {result['ask_ratio']}× vanilla, RSS {result['rss_ratio']}×")
        fig.tight_layout()
        fig.savefig(out / "startup.png", dpi=110)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
