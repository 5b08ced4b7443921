"""Load test for POST /api/ask: N concurrent clients for T seconds, on loopback only.

    python benchmarks/load_api.py [URL] [--clients 10] [--seconds 30]

Without URL it starts `python app.py serve` on a free port itself (on the configured index) and
stops it afterwards. Prints one JSON object: client-side latency percentiles, throughput, the
server's own `timings_ms.total` percentiles, and counts of statuses and errors.

Simplifies: each client is one asyncio task that sends its next question as soon as the last
answer arrives (closed loop), so the number of requests in flight never exceeds --clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
QUESTIONS = [
    "Combien les startups d'IA ont-elles levé en 2024 ?",
    "How much did Databricks raise?",
    "Wie viel hat OpenAI eingesammelt?",
    "Which VC firms invested in the most AI startups?",
    "Quelle part du capital-risque européen est allée à l'IA ?",
    "How much did Mistral raise?",
]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, float]:
    return {name: round(percentile(values, q), 1) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))}


async def client(http: httpx.AsyncClient, index: int, deadline: float, stats: dict[str, Any]) -> None:
    i = index
    while time.perf_counter() < deadline:
        question = QUESTIONS[i % len(QUESTIONS)]
        i += 1
        t0 = time.perf_counter()
        stats["sent"] += 1
        try:
            r = await http.post("/api/ask", json={"question": question})
        except httpx.HTTPError as exc:
            stats["errors"][type(exc).__name__] += 1
            continue
        elapsed = (time.perf_counter() - t0) * 1000
        stats["status"][str(r.status_code)] += 1
        if r.status_code == 200:
            stats["latency"].append(elapsed)
            stats["server"].append(float(r.json()["timings_ms"]["total"]))
        else:
            stats["errors"][f"http_{r.status_code}"] += 1


async def run(url: str, clients: int, seconds: float) -> dict[str, Any]:
    stats: dict[str, Any] = {"sent": 0, "latency": [], "server": [], "status": Counter(), "errors": Counter()}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await http.post("/api/ask", json={"question": QUESTIONS[0]})  # warm-up: lazy loads, caches
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http, i, t0 + seconds, stats) for i in range(clients)))
        wall = time.perf_counter() - t0
    ok = len(stats["latency"])
    return {
        "url": url,
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": stats["sent"],
        "ok": ok,
        "throughput_rps": round(ok / wall, 1),
        "latency_ms": summary(stats["latency"]),
        "server_total_ms": summary(stats["server"]),
        "status": dict(stats["status"]),
        "errors": dict(stats["errors"]),
    }


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "serve", "--port", str(port)], cwd=ROOT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/api/health", timeout=30).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("the server did not become ready")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", nargs="?", help="base URL of a served app (loopback only); default: start one")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    proc = None
    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK:
            p.error("only loopback URLs (127.0.0.1, localhost, ::1): this tool must not load anyone else's server")
        url = args.url.rstrip("/")
    else:
        proc, url = start_server()
    try:
        print(json.dumps(asyncio.run(run(url, args.clients, args.seconds)), indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
