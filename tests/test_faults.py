"""Faults: the indexer killed (SIGKILL) at random points, a deleted or damaged data folder,
a read-only folder, a full disk, two indexers at once. Nothing already indexed is lost."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatbot.settings import Settings
from index import store
from tests.conftest import ROOT, run_app

pytestmark = pytest.mark.slow
KILLS = 20


def complete_index(data_dir: Path) -> store.IndexInfo | None:
    s = Settings(data_dir=data_dir)
    client = store.make_client(s)
    info = store.read_pointer(client, s)
    if info is not None:
        assert store.count_units(client, info.collection, info.keys) == info.units
    return info


def ask_ok(env: dict[str, str], question: str = "How much did Databricks raise?") -> dict:
    out = run_app("ask", "--json", question, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_sigkill_during_indexing_never_leaves_a_half_index(tmp_path: Path) -> None:
    env = {"CHATBOT_DATA_DIR": str(tmp_path / "d")}
    extra = tmp_path / "extra.md"
    extra.write_text("# Extra\n\nLe fonds Orion a levé 7 millions d'euros selon ce document de test.\n", encoding="utf-8")
    assert run_app("index", str(extra), env=env).returncode == 0
    before = complete_index(tmp_path / "d")
    assert before is not None
    rng = random.Random(20261126)
    served = set()
    for i in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "index", "--rebuild"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 5.0))  # a rebuild takes ~5 s: kills land from start-up to the last write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        info = complete_index(tmp_path / "d")  # after every kill: a complete index, or none to rebuild
        assert info is not None
        served.add(info.collection)
        if i % 5 == 4:
            ans = ask_ok(env, "Combien le fonds Orion a-t-il levé ?")
            # the added document survived: its passage is found again, as the answer or, when the
            # answer models are not confident enough for a one-line document, as the closest passage
            assert any("Orion a levé 7 millions" in c["text"] for c in ans["citations"]), ans
    after = run_app("index", env=env)  # no crash loop: the next indexer runs normally
    assert after.returncode == 0
    print(f"{KILLS} kills, {len(served)} distinct complete indexes served")


def test_deleted_data_folder_is_rebuilt(tmp_path: Path) -> None:
    env = {"CHATBOT_DATA_DIR": str(tmp_path / "d")}
    assert run_app("index", env=env).returncode == 0
    shutil.rmtree(tmp_path / "d")
    assert "$10 billion" in ask_ok(env)["answer"]  # ask builds the missing index once (and answers from it)


def test_damaged_store_says_what_to_do_then_rebuilds(tmp_path: Path) -> None:
    env = {"CHATBOT_DATA_DIR": str(tmp_path / "d")}
    doc = tmp_path / "kept.txt"
    doc.write_text("Le fonds Lyra a levé 3 millions de dollars.\n\nUn second paragraphe.", encoding="utf-8")
    assert run_app("index", str(doc), env=env).returncode == 0
    db = tmp_path / "d" / "chroma" / "chroma.sqlite3"
    db.write_bytes(b"this is not a database" * 1000)
    out = run_app("ask", "How much did Databricks raise?", env=env)
    assert out.returncode == 6 and "index --rebuild" in out.stderr and "Traceback" not in out.stderr
    fixed = run_app("index", "--rebuild", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert "damaged" in fixed.stderr
    ans = ask_ok(env, "Combien le fonds Lyra a-t-il levé ?")
    # the added document was kept on disk too: its passage is found again (answered or shown as closest)
    assert any("Lyra a levé 3 millions" in c["text"] for c in ans["citations"]), ans


@pytest.fixture(scope="module")
def kept_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the corpus and one added (kept) document, built once; each case copies it."""
    folder = tmp_path_factory.mktemp("kept-index")
    doc = folder / "kept.txt"
    doc.write_text("Le fonds Lyra a levé 3 millions de dollars.\n\nUn second paragraphe sur le fonds Lyra.", encoding="utf-8")
    out = run_app("index", "add", str(doc), env={"CHATBOT_DATA_DIR": str(folder / "d")})
    assert out.returncode == 0, out.stderr
    return folder / "d"


REFUSING = (
    ("serve", "--port", "9"),  # never binds: the store is checked first
    ("ask", "How much did Databricks raise?"),
    ("index", "list"),
    ("index", "add", "{extra}"),
)


@pytest.mark.parametrize("size", [4096, 65536, 524288], ids=["4KB", "64KB", "512KB"])
@pytest.mark.parametrize("where", ["third", "middle", "end"])
def test_garbage_in_the_store_is_exit_6_with_advice_then_rebuilt(kept_index: Path, tmp_path: Path, where: str, size: int) -> None:
    """Random bytes over chroma.sqlite3 at a third, the middle or the end of it: every command but the
    rebuild refuses with one line, exit 6 and the advice; `index --rebuild` sets the store aside
    (kept, and says where) and rebuilds from the kept documents."""
    data = tmp_path / "d"
    shutil.copytree(kept_index, data)
    db = data / "chroma" / "chroma.sqlite3"
    length = db.stat().st_size
    offset = {"third": length // 3, "middle": length // 2, "end": length - size}[where]
    assert offset >= 0 and offset + size <= length
    with db.open("r+b") as fh:
        fh.seek(offset)
        fh.write(random.Random(offset + size).randbytes(size))
    env = {"CHATBOT_DATA_DIR": str(data)}
    extra = tmp_path / "extra.txt"
    extra.write_text("Le fonds Orion a levé 7 millions de dollars selon ce document de test.\n", encoding="utf-8")
    for args in REFUSING:
        out = run_app(*(a.format(extra=extra) for a in args), env=env, timeout=60)
        assert out.returncode == 6, (args, out.returncode, out.stderr[-1000:])
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "python app.py index --rebuild" in lines[0] and "Traceback" not in out.stderr, (
            args,
            out.stderr,
        )
    assert db.read_bytes()[offset : offset + size] == random.Random(offset + size).randbytes(size)  # nobody wrote to it

    fixed = run_app("index", "--rebuild", env=env, timeout=300)
    assert fixed.returncode == 0, fixed.stderr
    aside = [p for p in data.iterdir() if p.name.startswith("chroma.damaged-")]
    assert len(aside) == 1 and str(aside[0]) in fixed.stderr, fixed.stderr
    assert (aside[0] / "chroma.sqlite3").read_bytes()[offset : offset + size] == random.Random(offset + size).randbytes(size)
    listed = run_app("index", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert {d["id"] for d in json.loads(listed.stdout)} == {"ai-investments-2024.fr", "kept"}
    assert run_app("index", "add", str(extra), env=env).returncode == 0  # the rebuilt store takes new documents
    print(
        f"garbage {size} B at {where} ({offset} of {length}): 4 commands exit 6 with the advice; rebuilt, set aside as {aside[0].name}"
    )


def _as_nobody(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", sys.executable, str(ROOT / "app.py"), *args],
        env={**os.environ, **env, "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to an unprivileged user")
def test_read_only_data_folder_is_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "ro"
    assert run_app("index", env={"CHATBOT_DATA_DIR": str(data)}).returncode == 0
    os.chmod(tmp_path, 0o755)
    for p in [data, *data.rglob("*")]:
        os.chmod(p, 0o555 if p.is_dir() else 0o444)
    for args in (["index", "--rebuild"], ["ask", "How much did Databricks raise?"]):
        out = _as_nobody(args, {"CHATBOT_DATA_DIR": str(data)})
        assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
        assert "writable" in out.stderr or "not writable" in out.stderr or "readonly" in out.stderr
    for p in [data, *data.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    assert complete_index(data) is not None  # nothing was lost


@pytest.mark.skipif(not shutil.which("prlimit"), reason="needs prlimit")
def test_disk_full_is_a_clear_message_and_keeps_the_index(tmp_path: Path) -> None:
    env = {"CHATBOT_DATA_DIR": str(tmp_path / "d")}
    assert run_app("index", env=env).returncode == 0
    before = complete_index(tmp_path / "d")
    big = tmp_path / "big.txt"
    big.write_text(
        "\n\n".join(f"Paragraphe {i} sur les fonds de capital-risque et l'IA en Europe." for i in range(60)), encoding="utf-8"
    )
    # a file-size limit makes every write past it fail like a full disk would (Python ignores SIGXFSZ);
    # the store's database is already past the limit, so the first write of the new build fails
    assert (tmp_path / "d" / "chroma" / "chroma.sqlite3").stat().st_size > 256 * 1024
    out = subprocess.run(
        ["prlimit", f"--fsize={256 * 1024}", sys.executable, str(ROOT / "app.py"), "index", str(big)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert "disk" in out.stderr or "could not be written" in out.stderr or "cannot" in out.stderr
    assert complete_index(tmp_path / "d") == before
    assert "$10 billion" in ask_ok(env)["answer"]


def test_two_indexers_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "CHATBOT_DATA_DIR": str(tmp_path / "d")}
    assert run_app("index", env={"CHATBOT_DATA_DIR": env["CHATBOT_DATA_DIR"]}).returncode == 0
    cmd = [sys.executable, str(ROOT / "app.py"), "index", "--rebuild"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # the first holds the lock by now
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert second.returncode == 5 and "another indexer is running" in second.stderr
    waited = subprocess.Popen([*cmd, "--wait", "120"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    waited.communicate(timeout=180)
    assert waited.returncode == 0 and again.returncode in (0, 5)
    assert complete_index(tmp_path / "d") is not None
