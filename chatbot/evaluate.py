"""`python app.py eval`: citation hit@k and MRR, answer accuracy, refusals, per language, latency.

Simplifies: an answerable question is served usefully when the answer text (stated, or "not
sure" with its quoted candidates) contains one alternative of each keyword group; an unanswerable
one is right when the bot says "not found". Figures are computed from the same `answer()` every
adapter uses.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.question import fold


@dataclass
class Case:
    id: str
    language: str
    category: str
    question: str
    history: list[dict[str, str]]
    answerable: bool
    passage: str
    answer_any: list[list[str]]


def load_cases(path: Path) -> list[Case]:
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            cases.append(
                Case(
                    d["id"],
                    d["language"],
                    d["category"],
                    d["question"],
                    d.get("history", []),
                    d["answerable"],
                    d["passage"],
                    d["answer_any"],
                )
            )
    return cases


def _norm(text: str) -> str:
    return fold(text).replace("\u202f", " ").replace("\xa0", " ")


def keywords_ok(answer: str, groups: list[list[str]]) -> bool:
    a = _norm(answer)
    return all(any(_norm(k) in a for k in group) for group in groups)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    idx = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[idx]


def evaluate(bot: Any, cases: list[Case]) -> dict[str, Any]:
    bot.answer("warm-up question about AI funding")
    rows = []
    for c in cases:
        ans = bot.answer(c.question, c.history)
        texts = [x.text for x in ans.citations]
        rank = next((i + 1 for i, t in enumerate(texts) if c.passage and _norm(c.passage) in _norm(t)), None)
        rows.append(
            {
                "id": c.id,
                "language": c.language,
                "category": c.category,
                "answerable": c.answerable,
                "answered": ans.answered,
                "status": ans.status,
                "rank": rank,
                "answer_ok": (ans.status != "not_found" and keywords_ok(ans.answer, c.answer_any))
                if c.answerable
                else ans.status == "not_found",
                "stated_wrong": ans.answered and (not c.answerable or not keywords_ok(ans.answer, c.answer_any)),
                "top3_chars": sum(len(t) for t in texts[:3]),
                "ms": ans.timings_ms["total"],
                "answer": ans.answer,
                "question": c.question,
            }
        )
    return summarize(rows)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ans = [r for r in rows if r["answerable"]]
    unans = [r for r in rows if not r["answerable"]]

    def hit(k: int, rs: list[dict[str, Any]]) -> float:
        return sum(1 for r in rs if r["rank"] and r["rank"] <= k) / max(1, len(rs))

    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        a = [r for r in rs if r["answerable"]]
        u = [r for r in rs if not r["answerable"]]
        return {
            "n": len(rs),
            "hit@1": round(hit(1, a), 3),
            "hit@3": round(hit(3, a), 3),
            "useful": round(sum(r["answer_ok"] for r in a) / max(1, len(a)), 3),
            "not_found_accuracy": round(sum(r["status"] == "not_found" for r in u) / max(1, len(u)), 3) if u else None,
        }

    ms = [r["ms"] for r in rows]
    return {
        "n": len(rows),
        "answerable": len(ans),
        "unanswerable": len(unans),
        "hit@1": round(hit(1, ans), 3),
        "hit@3": round(hit(3, ans), 3),
        "hit@5": round(hit(5, ans), 3),
        "mrr": round(sum(1 / r["rank"] for r in ans if r["rank"]) / max(1, len(ans)), 3),
        # answerable: stated right, or "not sure" with the answer in a quoted candidate
        "useful": round(sum(r["answer_ok"] for r in ans) / max(1, len(ans)), 3),
        "stated_right": round(sum(r["answered"] and r["answer_ok"] for r in ans) / max(1, len(ans)), 3),
        "stated_wrong": round(sum(r["stated_wrong"] for r in ans) / max(1, len(ans)), 3),
        "false_not_found": round(sum(r["status"] == "not_found" for r in ans) / max(1, len(ans)), 3),
        "unanswerable_not_found": round(sum(r["status"] == "not_found" for r in unans) / max(1, len(unans)), 3),
        "unanswerable_stated": round(sum(r["answered"] for r in unans) / max(1, len(unans)), 3),
        "top3_citation_chars_mean": round(statistics.mean(r["top3_chars"] for r in ans), 1) if ans else 0,
        "top3_citation_chars_max": max((r["top3_chars"] for r in ans), default=0),
        "latency_ms": {"p50": round(percentile(ms, 0.5), 1), "p95": round(percentile(ms, 0.95), 1)},
        "by_language": {
            lang: block([r for r in rows if r["language"] == lang]) for lang in sorted({r["language"] for r in rows})
        },
        "failures": [
            {k: r[k] for k in ("id", "question", "rank", "status", "answer")}
            for r in rows
            if not r["answer_ok"] or (r["answerable"] and not (r["rank"] and r["rank"] <= 3))
        ],
    }


def main(args: argparse.Namespace, bot: Any) -> int:
    report = evaluate(bot, load_cases(Path(args.data)))
    if args.json:
        print(
            json.dumps(
                report if args.show_failures else {k: v for k, v in report.items() if k != "failures"},
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    print(f"questions {report['n']} ({report['answerable']} answerable, {report['unanswerable']} unanswerable)")
    print(
        f"citations  hit@1 {report['hit@1']:.3f}  hit@3 {report['hit@3']:.3f}  hit@5 {report['hit@5']:.3f}  MRR {report['mrr']:.3f}"
    )
    print(
        f"answers    useful {report['useful']:.3f} (stated right {report['stated_right']:.3f})  stated wrong {report['stated_wrong']:.3f}  "
        f"false not-found {report['false_not_found']:.3f}"
    )
    print(
        f"unanswerable  not found {report['unanswerable_not_found']:.3f}  stated {report['unanswerable_stated']:.3f}"
    )
    print(
        f"context    top-3 citations {report['top3_citation_chars_mean']:.0f} chars on average, {report['top3_citation_chars_max']} at most"
    )
    print(f"latency    p50 {report['latency_ms']['p50']} ms  p95 {report['latency_ms']['p95']} ms")
    for lang, b in report["by_language"].items():
        print(
            f"  {lang}: n={b['n']} hit@1 {b['hit@1']:.3f} hit@3 {b['hit@3']:.3f} useful {b['useful']:.3f} not found {b['not_found_accuracy']}"
        )
    if args.show_failures:
        for f in report["failures"]:
            print(f"\n- {f['id']} rank={f['rank']} status={f['status']}: {f['question']}\n  {f['answer'][:300]!r}")
    return 0
