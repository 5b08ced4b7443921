"""Load test for POST /api/ask and /api/ask/stream: N concurrent clients for T seconds per
endpoint, on loopback only, while the server's memory is sampled every second.

    python benchmarks/load_api.py                         # 20 clients x 60 s x both endpoints
    python benchmarks/load_api.py --clients 200 --seconds 10 --queue-size 8 --rate-limit 600 --out load-overlimit
    python benchmarks/load_api.py http://127.0.0.1:7860 --pid 1234   # an already running server

Without URL it starts `python app.py serve --no-llm` (extractive answers) on a free port, on the
configured index, with the given limits (the rate limit is off unless --rate-limit is given: all
clients share one address), and stops it afterwards. Writes benchmarks/results/<out>.json and
<out>.png and prints the JSON: per endpoint the throughput, latency percentiles (and time to the
first event for the stream), status counts (429 and 503 refusals apart from other errors), and the
server's RSS (its process and children: psutil if installed, else /proc/PID/status).

Simplifies: each client is one asyncio task that sends its next question as soon as the last
answer arrives (closed loop), so at most --clients requests are ever in flight; a refused client
waits what Retry-After says (capped at 2 s, plus jitter), as a polite client would. Every phase ends at its
deadline and the whole run has a hard time limit, so the tool always stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # chatbot.settings: the defaults the started server ran with
RESULTS = ROOT / "benchmarks" / "results"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ENDPOINTS = ("/api/ask", "/api/ask/stream")
QUESTIONS = [
    "Combien les startups d'IA ont-elles levé en 2024 ?",
    "How much did Databricks raise?",
    "Wie viel hat OpenAI eingesammelt?",
    "Which VC firms invested in the most AI startups?",
    "Quelle part du capital-risque européen est allée à l'IA ?",
    "How much did Mistral raise?",
]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 1)


def summary(values: list[float]) -> dict[str, float | None]:
    return {name: percentile(values, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))}


def rss_mb(pid: int) -> float | None:
    """Resident memory of the process and its descendants (uvicorn workers), in MB."""
    try:
        import psutil  # type: ignore[import-untyped]

        root = psutil.Process(pid)
        return round(sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20, 1)
    except ImportError:
        pass
    except Exception:  # the process ended
        return None
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))  # kB
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return round(total / 1024, 1) if total else None


class Phase:
    """What the clients of one endpoint saw."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.sent = 0
        self.latency: list[float] = []  # ms, successful requests
        self.first_event: list[float] = []  # ms, streams: until the first event arrived
        self.refused_latency: list[float] = []  # ms, 429 and 503: they must be immediate
        self.server: list[float] = []  # the server's own timings_ms.total
        self.status: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.done_at: list[tuple[float, int]] = []  # (seconds since start, status) for the plot
        self.wall = 0.0

    def report(self) -> dict[str, Any]:
        ok = len(self.latency)
        fives = sum(n for s, n in self.status.items() if s.startswith("5") and s != "503")
        out = {
            "requests": self.sent,
            "ok": ok,
            "seconds": round(self.wall, 2),
            "throughput_rps": round(ok / self.wall, 1) if self.wall else 0.0,
            "latency_ms": summary(self.latency),
            "server_total_ms": summary(self.server),
            "status": dict(sorted(self.status.items())),
            "refused": {"429": self.status.get("429", 0), "503": self.status.get("503", 0), "latency_ms": summary(self.refused_latency)},
            "server_errors_5xx": fives,
            "errors": dict(self.errors),
        }
        if self.endpoint.endswith("/stream"):
            out["first_event_ms"] = summary(self.first_event)
        return out


async def one_request(http: httpx.AsyncClient, phase: Phase, question: str) -> float:
    """Send one question; record it; return how long to wait before the next (Retry-After)."""
    t0 = time.perf_counter()
    phase.sent += 1
    try:
        async with http.stream("POST", phase.endpoint, json={"question": question}) as r:
            body, first = "", None
            async for chunk in r.aiter_text():
                first = first or time.perf_counter()
                body += chunk
    except httpx.HTTPError as exc:
        phase.errors[type(exc).__name__] += 1
        return 0.0
    elapsed = (time.perf_counter() - t0) * 1000
    phase.status[str(r.status_code)] += 1
    phase.done_at.append((time.perf_counter(), r.status_code))
    if r.status_code in (429, 503):
        phase.refused_latency.append(elapsed)
        return min(2.0, float(r.headers.get("retry-after", "1"))) * random.uniform(1.0, 1.5)  # jitter: no retry stampede
    if r.status_code != 200:
        phase.errors[f"http_{r.status_code}"] += 1
        return 0.0
    if phase.endpoint.endswith("/stream"):
        if "event: final" not in body or "event: error" in body:
            phase.errors["stream_without_final"] += 1
            return 0.0
        final = json.loads(body.rsplit("data: ", 1)[1])
        phase.first_event.append(((first or t0) - t0) * 1000)
    else:
        final = json.loads(body)
    phase.latency.append(elapsed)
    phase.server.append(float(final["timings_ms"]["total"]))
    return 0.0


async def run_phase(url: str, endpoint: str, clients: int, seconds: float) -> Phase:
    phase = Phase(endpoint)

    async def client(http: httpx.AsyncClient, index: int, deadline: float) -> None:
        i = index
        while time.perf_counter() < deadline:
            wait = await one_request(http, phase, QUESTIONS[i % len(QUESTIONS)])
            i += 1
            if wait:
                await asyncio.sleep(min(wait, max(0.0, deadline - time.perf_counter())))

    # a connection pool per client, made before the clock starts (each builds an SSL context: ~ms of
    # CPU); one pool shared by hundreds of connections costs the load generator more CPU than the
    # server spends refusing, and the figures would measure httpx, not the server
    https = [httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1)) for _ in range(clients)]
    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http, i, t0 + seconds) for i, http in enumerate(https)))
        phase.wall = time.perf_counter() - t0
    finally:
        await asyncio.gather(*(http.aclose() for http in https))
    phase.done_at = [(round(t - t0, 3), s) for t, s in phase.done_at]
    return phase


async def sample_rss(pid: int, samples: list[list[Any]], label: list[str], t0: float) -> None:
    while True:
        samples.append([round(time.perf_counter() - t0, 1), rss_mb(pid), label[0]])
        await asyncio.sleep(1.0)


async def run(url: str, pid: int | None, clients: int, seconds: float) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:  # warm-up: lazy loads, caches
        for q in QUESTIONS:
            await http.post("/api/ask", json={"question": q})
        health = (await http.get("/api/health")).json()
    samples: list[list[Any]] = []
    label = ["idle"]
    t0 = time.perf_counter()
    sampler = asyncio.create_task(sample_rss(pid, samples, label, t0)) if pid else None
    phases = {}
    for endpoint in ENDPOINTS:
        label[0] = endpoint
        phases[endpoint] = await run_phase(url, endpoint, clients, seconds)
    label[0] = "idle"
    await asyncio.sleep(1.5)  # one more sample after the load
    if sampler:
        sampler.cancel()
    mem = [s[1] for s in samples if s[1] is not None]
    return {
        "url": url,
        "clients": clients,
        "seconds_per_endpoint": seconds,
        "cpus": os.cpu_count(),
        "server": {"pid": pid, "units": health.get("units"), "embedder": health.get("embedder")},
        "endpoints": {e: p.report() for e, p in phases.items()},
        "rss_mb": {"start": mem[0] if mem else None, "end": mem[-1] if mem else None, "max": max(mem, default=None), "samples": samples},
        "_timeline": {e: p.done_at for e, p in phases.items()},
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=False)
    samples = [s for s in result["rss_mb"]["samples"] if s[1] is not None]
    if samples:
        top.plot([s[0] for s in samples], [s[1] for s in samples], color="tab:blue")
        for endpoint, color in zip(ENDPOINTS, ("tab:green", "tab:orange"), strict=True):
            ts = [s[0] for s in samples if s[2] == endpoint]
            if ts:
                top.axvspan(min(ts), max(ts), color=color, alpha=0.12, label=endpoint)
        top.set_ylim(0, max(s[1] for s in samples) * 1.15)
        top.legend(loc="lower right")
    top.set_xlabel("seconds")
    top.set_ylabel("server RSS (MB)")
    top.set_title(f"{result['clients']} clients, {result['seconds_per_endpoint']:.0f} s per endpoint, {result['cpus']} CPUs")
    for endpoint, color in zip(ENDPOINTS, ("tab:green", "tab:orange"), strict=True):
        done = result["_timeline"][endpoint]
        rep = result["endpoints"][endpoint]
        seconds = max(1, int(result["seconds_per_endpoint"]))  # whole seconds: the last partial one would look like a drop
        ok = Counter(int(t) for t, s in done if s == 200)
        refused = Counter(int(t) for t, s in done if s in (429, 503))
        lat = rep["latency_ms"]
        bottom.plot(range(seconds), [ok[i] for i in range(seconds)], color=color,
                    label=f"{endpoint} 200/s (p50 {lat['p50']} ms, p95 {lat['p95']}, p99 {lat['p99']})")  # fmt: skip
        if refused:
            bottom.plot(range(seconds), [refused[i] for i in range(seconds)], color=color, linestyle=":", label=f"{endpoint} 429+503/s")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("seconds into the phase")
    bottom.set_ylabel("responses per second")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def start_server(workers: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, Path]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkstemp(prefix="load-server-", suffix=".log")[1])
    cmd = [sys.executable, str(ROOT / "app.py"), "serve", "--port", str(port), "--no-llm", "--workers", str(workers)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "/api/health", timeout=30).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"the server did not become ready; see {log}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", nargs="?", help="base URL of a served app (loopback only); default: start one")
    p.add_argument("--pid", type=int, help="with URL: the server's process id, to sample its memory")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0, help="per endpoint")
    p.add_argument("--workers", type=int, default=1, help="when starting the server")
    p.add_argument("--queue-size", type=int, help="when starting the server: CHATBOT_API_QUEUE_SIZE")
    p.add_argument("--rate-limit", type=int, default=0, help="when starting the server: CHATBOT_RATE_LIMIT_PER_MINUTE (default off)")
    p.add_argument("--out", default="load", help="file name (no extension) in benchmarks/results")
    args = p.parse_args()
    if not (1 <= args.clients <= 1000 and 0 < args.seconds <= 600):
        p.error("--clients must be 1..1000 and --seconds 0..600: this is a bounded tool")
    proc = None
    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK:
            p.error("only loopback URLs (127.0.0.1, localhost, ::1): this tool must not load anyone else's server")
        url, pid = args.url.rstrip("/"), args.pid
    else:
        env = {"CHATBOT_RATE_LIMIT_PER_MINUTE": str(args.rate_limit)}
        if args.queue_size is not None:
            env["CHATBOT_API_QUEUE_SIZE"] = str(args.queue_size)
        proc, url, log = start_server(args.workers, env)
        pid = proc.pid
    try:
        limit = len(ENDPOINTS) * args.seconds + 120  # warm-up and drain included: never hangs
        result = asyncio.run(asyncio.wait_for(run(url, pid, args.clients, args.seconds), limit))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(result, RESULTS / f"{args.out}.png")
    result.pop("_timeline")
    if proc is not None:  # the limits it ran with (the others are the settings' defaults, or CHATBOT_* from the environment)
        from chatbot.settings import Settings

        defaults = Settings()
        queue = defaults.api_queue_size if args.queue_size is None else args.queue_size
        result["server"].update({"workers": args.workers, "rate_limit_per_minute": args.rate_limit, "api_queue_size": queue,
                                 "web_concurrency": defaults.web_concurrency, "stream_delay_ms": defaults.stream_delay_ms})  # fmt: skip
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    shown = {**result, "rss_mb": {k: v for k, v in result["rss_mb"].items() if k != "samples"}}
    print(json.dumps(shown, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
