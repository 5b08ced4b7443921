"""A local OpenAI-compatible server for a GGUF model: llama.cpp's own HTTP server through
xllamacpp (a prebuilt wheel: nothing to compile).

Used two ways:
- in process, by chatbot.llm for CHATBOT_LLM_GGUF: `start(path)` serves the model on a free
  loopback port (with a random API key) and the usual OpenAI-like client talks to it;
- as a command, `python -m chatbot.llm_server --model FILE --port N`, for the tests and the
  benchmark: it prints one line once the model is loaded and blocks until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LocalServer:
    url: str  # the OpenAI base URL, ending in /v1
    model: str  # the alias it answers to
    api_key: str  # "" when the server takes any request
    seconds: float  # time to load the model and start listening
    _server: Any = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop serving (llama.cpp ends its loop when the last reference to its server goes)."""
        self._server = None


def start(
    model_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    n_ctx: int = 4096,
    threads: int = 1,
    alias: str = "",
    api_key: str = "",
    verbose: bool = False,
) -> LocalServer:
    """Load the model and serve it; port 0 picks a free one. Raises ImportError without
    xllamacpp, RuntimeError when llama.cpp cannot load the file or bind the port."""
    import xllamacpp

    path = Path(model_path)
    if not path.is_file():
        raise RuntimeError(f"no such model file: {path}")
    alias = alias or path.stem
    p = xllamacpp.CommonParams()
    p.model.path = str(path)
    p.model_alias = {alias}
    p.hostnames = [host]
    p.port = port
    p.n_ctx = n_ctx
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.ui = False  # the API only, no web page
    p.verbosity = 3 if verbose else 0  # 0: llama.cpp prints nothing
    if api_key:
        p.api_keys = [api_key]
    t0 = time.perf_counter()
    with _keep_signal_handlers():
        server = xllamacpp.Server(p)
    seconds = time.perf_counter() - t0
    address = str(server.listening_address).rstrip("/")
    return LocalServer(url=address + "/v1", model=alias, api_key=api_key, seconds=seconds, _server=server)


@contextlib.contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """Some xllamacpp builds install llama.cpp's SIGINT/SIGTERM handlers when a server starts,
    which would take Ctrl-C and `kill` away from the host process (uvicorn, the CLI). Put the
    previous C-level handlers back; this works from any thread, unlike signal.signal."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        sigaction = libc.sigaction
    except (OSError, AttributeError):  # not POSIX: nothing to keep
        yield
        return
    saved = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        buf = ctypes.create_string_buffer(512)  # larger than any platform's struct sigaction
        if sigaction(int(sig), None, buf) == 0:
            saved[sig] = buf
    try:
        yield
    finally:
        for sig, buf in saved.items():
            sigaction(int(sig), buf, None)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m chatbot.llm_server", description="Serve a GGUF model over an OpenAI-compatible HTTP API."
    )
    ap.add_argument("--model", required=True, help="the .gguf file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    ap.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens")
    ap.add_argument("--threads", type=int, default=1, help="more is faster only while no other process needs a core")
    ap.add_argument("--alias", default="", help="the model name clients use (default: the file name)")
    ap.add_argument("--api-key", default="", help="require this bearer token")
    ap.add_argument("-v", "--verbose", action="store_true", help="llama.cpp's own logs on stderr")
    args = ap.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = start(args.model, host=args.host, port=args.port, n_ctx=args.n_ctx, threads=args.threads, alias=args.alias,
                       api_key=args.api_key, verbose=args.verbose)  # fmt: skip
    except ImportError:
        print("error: xllamacpp is not installed: pip install -e '.[gguf]'", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"serving {server.model} at {server.url} (loaded in {server.seconds:.2f}s)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
