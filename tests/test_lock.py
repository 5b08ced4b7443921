"""The indexer's lock file (data_dir/index.lock): removed when released, a stale one (its process
gone) taken over, a live one refused, and never held twice at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from chatbot.errors import IndexLocked
from chatbot.settings import Settings
from index import store


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def lock_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "index.lock"


def hold_in_child(path: Path, names: str = "") -> subprocess.Popen[str]:
    """Another process that flocks the file and writes `names` in it (by default its own pid, as
    an indexer does; another pid for an orphaned child of one) until killed."""
    code = textwrap.dedent(f"""
        import fcntl, os, socket, time
        fh = open({str(path)!r}, "a+")
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0); fh.truncate(); fh.write({names!r} or f"pid {{os.getpid()}} on {{socket.gethostname()}}"); fh.flush()
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_lock_file_is_removed_on_release_and_on_error(fresh_settings: Settings) -> None:
    path = lock_path(fresh_settings)
    with store.writer_lock(fresh_settings):
        assert path.read_text() == f"pid {os.getpid()} on {socket.gethostname()}"
    assert not path.exists()
    with pytest.raises(RuntimeError), store.writer_lock(fresh_settings):
        raise RuntimeError("the build failed")
    assert not path.exists()


def test_stale_lock_of_a_dead_process_is_taken_over(fresh_settings: Settings) -> None:
    path = lock_path(fresh_settings)
    path.parent.mkdir(parents=True)
    path.write_text(f"pid {dead_pid()}")  # left by an indexer that was killed (the old format, without a host)
    with store.writer_lock(fresh_settings):
        assert path.read_text().startswith(f"pid {os.getpid()} ")
    assert not path.exists()


def test_lock_still_held_for_a_dead_process_is_taken_over(fresh_settings: Settings) -> None:
    """A child that inherited the lock outlived the indexer that wrote its pid: stale all the same."""
    path = lock_path(fresh_settings)
    path.parent.mkdir(parents=True)
    orphan = hold_in_child(path, f"pid {dead_pid()} on {socket.gethostname()}")
    try:
        with store.writer_lock(fresh_settings):
            assert path.read_text().startswith(f"pid {os.getpid()} ")
        assert not path.exists()
    finally:
        orphan.kill()
        orphan.wait()


def test_live_holder_is_refused_then_waited_for(fresh_settings: Settings) -> None:
    path = lock_path(fresh_settings)
    path.parent.mkdir(parents=True)
    other = hold_in_child(path)
    try:
        with (
            pytest.raises(IndexLocked, match=f"another indexer is running \\(pid {other.pid} on "),
            store.writer_lock(fresh_settings),
        ):
            pass
        threading.Timer(0.5, other.kill).start()  # its lock goes with it
        t0 = time.monotonic()
        with store.writer_lock(fresh_settings, timeout=30):
            assert time.monotonic() - t0 < 20
            assert path.read_text().startswith(f"pid {os.getpid()} ")
    finally:
        other.kill()
        other.wait()
    assert not path.exists()


def test_lock_is_never_held_twice(fresh_settings: Settings) -> None:
    """Threads of one process contend like processes do (each opens the file itself): while one
    holds the lock, releases remove the file and new holders recreate it, nobody else is inside."""
    inside, most, rounds = 0, 0, []
    counter = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(10):
            with store.writer_lock(fresh_settings, timeout=60):
                with counter:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.002)
                with counter:
                    inside -= 1
            rounds.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(rounds) == 40 and most == 1
    assert not lock_path(fresh_settings).exists()
