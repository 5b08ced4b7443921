"""How fast one large document is indexed on this machine, to set the document size limit
(settings.max_document_bytes) and to quote the time of the largest accepted file.

The text: paragraphs of the shipped article and the three test articles, shuffled, with every
number replaced by a new one so no vector is in the cache (the cache is off too,
CHATBOT_VECTOR_CACHE=0): every unit is embedded, as for a document nobody added before. Each
size is added with `python app.py index add` to a fresh data folder holding the indexed corpus
(so model loading and the corpus are not counted twice: the corpus is indexed first).

Measured per size: wall time of the add, units written, units/s and MB/min.
Writes benchmarks/results/index_rate.json.
Run: .venv/bin/python benchmarks/index_rate.py [--sizes 0.1 0.25 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASES = [ROOT / "corpus" / "ai-investments-2024.fr.txt", *sorted((ROOT / "tests" / "data" / "articles").iterdir())]


def paragraphs() -> list[str]:
    from index.build import read_document

    out: list[str] = []
    for path in BASES:
        doc = read_document(path)
        out += [p.strip() for p in re.split(r"\n\s*\n", doc.text or doc.raw) if p.strip()]
    return out


def make_text(size: int, seed: int) -> str:
    """About `size` bytes of article-shaped text no vector cache has seen."""
    rng = random.Random(seed)
    paras = paragraphs()
    out, total = [], 0
    while total < size:
        p = re.sub(r"\d+", lambda _: str(rng.randint(1, 9999)), rng.choice(paras))
        out.append(p)
        total += len(p.encode("utf-8")) + 2
    return "\n\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.1, 0.25, 0.5], help="MB")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "index_rate.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="index-rate-"))
    env = {**os.environ, "CHATBOT_VECTOR_CACHE": "0", "CHATBOT_DATA_DIR": str(work / "base")}
    app = [sys.executable, str(ROOT / "app.py")]
    subprocess.run([*app, "index"], env=env, check=True, capture_output=True)
    rows = []
    try:
        for i, mb in enumerate(args.sizes):
            data = work / f"d{i}"
            shutil.copytree(work / "base", data)
            path = work / f"large-{mb:g}mb.txt"
            path.write_text(make_text(int(mb * 1_000_000), seed=i), encoding="utf-8")
            size = path.stat().st_size
            t0 = time.perf_counter()
            out = subprocess.run(
                [*app, "index", "add", str(path)],
                env={**env, "CHATBOT_DATA_DIR": str(data), "CHATBOT_MAX_DOCUMENT_BYTES": str(10**9)},
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
            units = int(re.search(r"(\d+) units written", out.stdout).group(1))  # type: ignore[union-attr]
            row = {
                "bytes": size,
                "seconds": round(seconds, 1),
                "units": units,
                "units_per_s": round(units / seconds, 1),
                "mb_per_min": round(size / 1e6 / (seconds / 60), 3),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(data)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(
        json.dumps({"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "runs": rows}, indent=1) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
