"""Serving while indexing: a running server follows each new index without a restart and never
fails an answer meanwhile; an indexer killed mid-write adds nothing half-way; /api/health says
what is really served and fails (503) when the store cannot answer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatbot.settings import Settings
from index import store
from index.build import stored_documents
from tests.conftest import ROOT, WebServer, run_app

pytestmark = pytest.mark.slow
FUNDS = ["Albireo", "Betelgeuse", "Capella", "Deneb", "Eltanin"]  # one new document (and fact) per index run
KILLED = "Fomalhaut"  # the document whose indexer is killed mid-write: never served


@pytest.fixture(scope="module")
def base_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One index of the article, copied for each test (indexing it takes ~20 s)."""
    data = tmp_path_factory.mktemp("base") / "d"
    out = run_app("index", env={"CHATBOT_DATA_DIR": str(data)})
    assert out.returncode == 0, out.stderr
    return data


def copy_of(base: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    data = tmp_path / "d"
    shutil.copytree(base, data)
    return data, {"CHATBOT_DATA_DIR": str(data)}


def fact_doc(folder: Path, name: str, millions: int) -> Path:
    path = folder / f"fonds-{name.lower()}.txt"
    path.write_text(
        f"Le fonds {name} a levé {millions} millions d'euros en mars 2024 pour financer des robots agricoles.\n", encoding="utf-8"
    )
    return path


def served_documents(data_dir: Path) -> list[str]:
    s = Settings(data_dir=data_dir)
    client = store.make_client(s)
    return [d.source for d in stored_documents(client, store.read_pointer(client, s))]


class Poller:
    """Asks the server one question after another in a thread; counts every non-200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: dict[int, int] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url + "/api/ask", json={"question": "How much did Databricks raise?"})
                    self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
                    if r.status_code != 200:
                        self.failures.append(f"{r.status_code} {r.text[:300]}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(90)


def cites(url: str, name: str) -> bool:
    r = httpx.post(url + "/api/ask", json={"question": f"Combien le fonds {name} a-t-il levé ?"}, timeout=60)
    assert r.status_code == 200, r.text
    return any(f"fonds {name}" in c["text"] for c in r.json()["citations"])


def index_killed_mid_write(doc: Path, data_dir: Path, env: dict[str, str]) -> None:
    """`index DOC`, SIGKILLed as soon as it starts keeping the document, before its build is done."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "index", str(doc)],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    folder = data_dir / "documents"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if folder.is_dir() and any(doc.name in p.name and not p.name.endswith(".tmp") for p in folder.iterdir()):
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the indexer finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


def test_server_follows_each_new_index_and_never_fails(tmp_path: Path, base_index: Path) -> None:
    data, env = copy_of(base_index, tmp_path)
    server = WebServer(data, tmp_path / "server.log", env={"CHATBOT_RATE_LIMIT_PER_MINUTE": "0"}).wait_ready()
    poller = Poller(server.url)
    delays: dict[str, float] = {}
    try:
        for i, name in enumerate(FUNDS):
            if i == 3:  # between two good runs: an indexer killed while writing
                index_killed_mid_write(fact_doc(tmp_path, KILLED, 99), data, env)
                kept = [p.name for p in (data / "documents").iterdir()]
                assert not any(n.endswith(f"fonds-{KILLED.lower()}.txt") for n in kept), kept  # not kept as added
                assert f"fonds-{KILLED.lower()}.txt" not in served_documents(data)
            out = run_app("index", str(fact_doc(tmp_path, name, 11 + i)), env=env)
            assert out.returncode == 0, out.stderr
            done = time.monotonic()
            while not cites(server.url, name):
                assert time.monotonic() - done < 30, (
                    f"{name} not served 30 s after its index was built:\n{server.log.read_text()[-2000:]}"
                )
                time.sleep(0.2)
            delays[name] = time.monotonic() - done
        health = httpx.get(server.url + "/api/health", timeout=30).json()
        pointer = store.read_pointer(store.make_client(Settings(data_dir=data)), Settings(data_dir=data))
        assert pointer is not None and health["fingerprint"] == pointer.fingerprint
        assert health["documents"] == 1 + len(FUNDS)  # the article + the five, not the killed one
        assert not cites(server.url, KILLED)
    finally:
        poller.stop()
        server.stop()
    print(
        f"asks during indexing: {poller.statuses}; new document served after (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in delays.items())
    )
    assert not poller.failures, poller.failures[:5]
    assert poller.statuses.get(200, 0) > 20
    assert "Traceback" not in server.log.read_text()


def test_interrupted_add_is_not_built_in_silently(tmp_path: Path, base_index: Path) -> None:
    """A killed `index FILE` leaves nothing kept; a kept document the index lacks is named."""
    data, env = copy_of(base_index, tmp_path)
    doc = fact_doc(tmp_path, KILLED, 99)
    index_killed_mid_write(doc, data, env)
    assert not [p for p in (data / "documents").glob("*__*") if p.name.endswith(".txt")]  # nothing half-added
    again = run_app("index", env=env)
    assert again.returncode == 0, again.stderr
    assert doc.name not in served_documents(data)
    assert doc.name in again.stderr and "interrupted" in again.stderr  # said what happened to it
    # a document kept on disk but not in the index (e.g. from an older version): named, then built in
    stray = fact_doc(tmp_path, "Gienah", 5)
    (data / "documents" / f"0123456789abcdef__{stray.name}").write_text(stray.read_text(encoding="utf-8"), encoding="utf-8")
    out = run_app("index", env=env)
    assert out.returncode == 0 and stray.name in out.stderr, out.stderr
    assert stray.name in served_documents(data)


def test_health_is_503_when_the_store_cannot_answer(tmp_path: Path, base_index: Path) -> None:
    data = copy_of(base_index, tmp_path)[0]
    server = WebServer(data, tmp_path / "server.log").wait_ready()
    try:
        ok = httpx.get(server.url + "/api/health", timeout=30)
        assert ok.status_code == 200 and ok.json()["documents"] == 1
        (data / "chroma" / "chroma.sqlite3").write_bytes(b"this is not a database" * 1000)
        bad = httpx.get(server.url + "/api/health", timeout=30)
        assert bad.status_code == 503 and bad.headers["content-type"].startswith("application/json"), bad.text
        body: Any = bad.json()
        assert "store" in body["error"] and "index --rebuild" in body["error"]
        time.sleep(3)  # the index watcher meets the damage too: the server stays up
        assert server.proc.poll() is None
        assert httpx.get(server.url + "/api/health", timeout=30).status_code == 503
    finally:
        server.stop()


def test_cli_reader_holds_a_lease_and_follows_new_indexes(tmp_path: Path, base_index: Path) -> None:
    """`ask --json -` (like `chat`) is a long-lived reader: its build is leased while it reads,
    new documents become answerable without restarting it, and the lease goes when it exits."""
    data, env = copy_of(base_index, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "ask", "--json", "-"],
        env={**os.environ, **env}, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None

    def ask(name: str) -> dict[str, Any]:
        proc.stdin.write(f"Combien le fonds {name} a-t-il levé ?\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read() if proc.stderr else ""
        out: dict[str, Any] = json.loads(line)
        assert "error" not in out, out
        return out

    def cited(out: dict[str, Any], name: str) -> bool:
        return any(f"fonds {name}" in c["text"] for c in out["citations"])

    try:
        assert not cited(ask(FUNDS[0]), FUNDS[0])
        served = store.read_pointer(store.make_client(Settings(data_dir=data)), Settings(data_dir=data))
        assert served is not None and set(served.keys) <= store.leased(Settings(data_dir=data))
        for i, name in enumerate(FUNDS[:3]):  # three builds: without the lease, the first would be pruned
            out = run_app("index", str(fact_doc(tmp_path, name, 11 + i)), env=env)
            assert out.returncode == 0, out.stderr
        done = time.monotonic()
        while not cited(ask(FUNDS[2]), FUNDS[2]):
            assert time.monotonic() - done < 30, "the new document was not answered 30 s after its index was built"
            time.sleep(0.2)
        assert cited(ask(FUNDS[0]), FUNDS[0])
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert not list((data / store.READERS_DIR).glob("*.json"))  # the lease went with the reader
