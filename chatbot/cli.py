"""The command line: `python app.py ask|chat|index|eval|serve`. Parsing only; the work is in
the core. Heavy libraries load inside the commands, so `--help` is instant."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from chatbot.errors import ChatbotError, InvalidQuestion


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr)


def _settings(args: argparse.Namespace | None = None) -> Any:
    from pydantic import ValidationError

    from chatbot.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ChatbotError(f"invalid setting CHATBOT_{str(first['loc'][0]).upper()}: {first['msg']}") from None
    llm = getattr(args, "llm", None)
    if llm is False:
        settings = settings.model_copy(update={"llm_enabled": False})
    elif llm is True:
        if not (settings.llm_base_url or settings.llm_gguf):
            raise ChatbotError("--llm needs a model: set CHATBOT_LLM_BASE_URL (+ CHATBOT_LLM_MODEL) or CHATBOT_LLM_GGUF")
        settings = settings.model_copy(update={"llm_enabled": True})
    return settings


def _quiet_libraries() -> None:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "0")
    for name in ("chromadb", "httpx", "llama_index", "bm25s", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


def ensure_index(settings: Any, quiet: bool = False) -> None:
    """Build the index if there is none (readers never write otherwise)."""
    from index import store

    client = store.make_client(settings)
    if store.read_pointer(client, settings) is None:
        if not quiet:
            _warn("no index yet: building it once…")
        cmd_index(argparse.Namespace(files=[], rebuild=False, wait=60.0, quiet=quiet))


@contextlib.contextmanager
def _reader(settings: Any, follow: bool = False) -> Iterator[Any]:
    """The bot, through a holder that leases its build (no indexer prunes it under us) and, with
    `follow`, switches to each new index between questions as the server does."""
    from chatbot.holder import BotHolder

    ensure_index(settings, quiet=True)
    holder = BotHolder(settings, warn=_warn)
    holder.get()
    if follow:
        holder.start()
    try:
        yield holder
    finally:
        holder.close()


def cmd_ask(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.question == "-":
        return _ask_batch(settings, args)
    from chatbot.core import validate

    validate(args.question, [], settings)  # fail fast, before loading models
    with _reader(settings) as holder:
        bot = holder.get().scoped(args.doc)
        if args.json:
            print(json.dumps(bot.answer(args.question).to_dict(), ensure_ascii=False))
        else:
            _print_streamed(bot, args.question, [])
    return 0


def _print_streamed(bot: Any, question: str, history: list[dict[str, str]]) -> Any:
    """Print an LLM answer token by token, then the checked version if it differs, then sources."""
    from chatbot.render import render, render_sources
    from chatbot.schema import Delta, Final

    final = None
    streamed = False
    for event in bot.stream(question, history):
        if isinstance(event, Delta) and bot.llm is not None:
            print(event.text, end="", flush=True)
            streamed = True
        elif isinstance(event, Final):
            final = event
    assert final is not None
    answer = final.answer
    label = bot.messages.get("sources", answer.language)
    if not streamed:
        print(render(answer, sys.stdout, label))
    else:
        print()
        if final.replaced:
            print("\n" + render(answer, sys.stdout, label))
        else:
            print(render_sources(answer, sys.stdout, label))
    return answer


def _ask_batch(settings: Any, args: argparse.Namespace) -> int:
    with _reader(settings, follow=True) as holder:
        holder.get().scoped(args.doc)  # an unknown id fails once, before any line is read
        for line in sys.stdin:
            _answer_line(holder.get(), line, args.doc)
    return 0


def _answer_line(bot: Any, line: str, docs: list[str] | None = None) -> None:
    """One JSON line out per line in: the answer, or {"error": …} for that line only. A JSON line
    may name its own documents ({"question": …, "document": ID or [IDs]})."""
    line = line.strip()
    if not line:
        return
    try:
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidQuestion(f"invalid JSON: {exc.msg}") from None
            if not isinstance(item, dict):
                raise InvalidQuestion('each JSON line must be an object {"question": ..., "history": [...]}')
            scope = docs if item.get("document") is None else item["document"]
            names = [scope] if isinstance(scope, str) else scope
            if scope is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise InvalidQuestion('"document" must be a document id (a string) or a list of document ids')
            if scope is not None and (not names or not all(n.strip() for n in names)):
                raise InvalidQuestion("empty scope: name at least one document (leave `document` out to ask every document)")
            out = bot.scoped(scope).answer(item.get("question"), item.get("history"))
        else:
            out = bot.scoped(docs).answer(line)
        print(json.dumps(out.to_dict(), ensure_ascii=False), flush=True)
    except ChatbotError as exc:
        print(json.dumps({"error": str(exc), "input": line[:200]}, ensure_ascii=False), flush=True)


def cmd_chat(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _reader(settings, follow=True) as holder:
        return _chat_loop(holder, settings, args.doc)


def _chat_loop(holder: Any, settings: Any, docs: list[str] | None = None) -> int:
    history: list[dict[str, str]] = []
    bot = holder.get().scoped(docs)
    what = (
        "; ".join(bot.retriever.documents[d]["title"] or d for d in bot.scope)
        if docs or len(bot.scope) == 1
        else f"{len(bot.scope)} documents"
    )
    print(f"Ask about {what[:200]} (empty line or Ctrl-D to quit, /new for a new conversation).", file=sys.stderr)
    while True:
        try:
            question = input("\n? ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not question.strip():
            return 0
        if question.strip() == "/new":
            history = []
            continue
        try:
            answer = _print_streamed(holder.get().scoped(docs), question, history)
        except InvalidQuestion as exc:
            _warn(f"error: {exc}")
            continue
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.answer}]
        history = history[-settings.max_history_turns * 2 :]


def cmd_index(args: argparse.Namespace) -> int:
    """`index` brings the index up to date; `index add|list|remove` manage its documents."""
    files = list(getattr(args, "files", []) or [])
    action = getattr(args, "action", None)
    if action is None and files and files[0] in ("add", "list", "remove"):
        action, files = files[0], files[1:]
    if action == "list":
        return _index_list(args, files)
    if action == "remove":
        return _index_remove(args, files)
    if action == "add" and not files:
        raise ChatbotError("index add: name at least one file or folder (.txt, .md, .html)")
    return _index_build(args, files)


def _index_build(args: argparse.Namespace, files: list[str]) -> int:
    from chatbot.progress import Progress
    from index.build import build

    settings = _settings()
    progress = Progress("never" if getattr(args, "quiet", False) else settings.progress)
    try:
        report = build(
            settings, [Path(f) for f in files], rebuild=getattr(args, "rebuild", False), progress=progress, warn=_warn,
            lock_timeout=getattr(args, "wait", 0.0), encoding=getattr(args, "encoding", None),
        )  # fmt: skip
    finally:
        progress.close()
    if not getattr(args, "quiet", False):
        for doc_id, source in report.named:  # the id is what --doc, `index remove` and the API take
            print(f"{doc_id}\t{source}")
        if report.status == "unchanged":
            print(f"index up to date: {report.documents} document(s), {report.info.units} units ({report.info.embedder})")
        else:
            added = f"; added {', '.join(report.added)}" if report.added else ""
            print(
                f"index built: {report.documents} document(s), {report.info.units} units, {report.embedded} units written "
                f"with {report.info.embedder} in {report.seconds:.1f}s{added}"
            )
    return 0


def _index_list(args: argparse.Namespace, extra: list[str]) -> int:
    from index import store

    if extra:
        raise ChatbotError(f"index list takes no arguments (got {' '.join(extra)[:100]})")
    settings = _settings()
    client = store.make_client(settings)
    info = store.read_pointer(client, settings)
    if info is None:
        raise ChatbotError("no index yet: run `python app.py index` first")
    rows = []
    for r in store.document_records(client, info.collection, info.keys):
        m = r["meta"]
        rows.append({k: m.get(k, "") for k in ("doc_id", "title", "language", "date", "author", "source", "url", "units")})
        rows[-1]["id"] = rows[-1].pop("doc_id")
    if getattr(args, "json", False):
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    for row in rows:
        print(
            f"{row['id']}\t{row['language'] or '?'}\t{row['date'] or '-'}\t{row['units']} units\t{row['title'][:70]}\t({row['source']})"
        )
    print(f"{len(rows)} document(s), {info.units} units", file=sys.stderr)
    return 0


def _index_remove(args: argparse.Namespace, ids: list[str]) -> int:
    from index.build import remove_documents

    if not ids:
        raise ChatbotError("index remove: name the id of the document to remove (`python app.py index list` shows them)")
    report = remove_documents(_settings(), ids, warn=_warn, lock_timeout=getattr(args, "wait", 0.0))
    print(f"removed {', '.join(report.removed)}; the index holds {report.documents} document(s), {report.info.units} units")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import tempfile

    from chatbot import bank
    from chatbot.train import train

    settings = _settings()
    if args.fetch:
        missing = bank.fetch_fixtures()
        if missing:
            raise bank.FixtureMissing(
                f"could not fetch into {settings.fixtures_dir} (no network?): " + "; ".join(missing)
                + ". Set CHATBOT_FIXTURES_DIR to a folder that holds them"
            )  # fmt: skip
    bank.check_fixtures()  # all of them: without XQuAD's, training would quietly fit other models
    if not args.check:
        models = train(settings, xquad_titles=args.xquad)
        print(
            f"answer models written to {settings.models_path} ({models.meta['questions']} bank questions, {models.meta['extra_questions']} XQuAD)"
        )
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "answer.json"
        train(settings, out=out, xquad_titles=args.xquad)
        refit, shipped = (json.loads(f.read_text(encoding="utf-8")) for f in (out, settings.models_path))
        differences = compare_models(refit, shipped)
    if differences:
        print(f"the refit differs from {settings.models_path}:", *differences[:20], sep="\n  ")
        return 1
    print(f"the refit reproduces {settings.models_path}")
    return 0


def compare_models(new: Any, shipped: Any, where: str = "", atol: float = 1e-3) -> list[str]:
    """Where two model files differ: numbers by more than `atol`, anything else at all."""
    if isinstance(new, dict) and isinstance(shipped, dict):
        keys = sorted(set(new) | set(shipped))
        return [d for k in keys for d in compare_models(new.get(k), shipped.get(k), f"{where}.{k}", atol)]
    if isinstance(new, list) and isinstance(shipped, list) and len(new) == len(shipped):
        return [d for i, (a, b) in enumerate(zip(new, shipped, strict=True)) for d in compare_models(a, b, f"{where}[{i}]", atol)]
    numbers = (int, float)
    if isinstance(new, numbers) and isinstance(shipped, numbers) and not isinstance(new, bool):
        return [] if abs(float(new) - float(shipped)) <= atol else [f"{where}: {new} (shipped {shipped})"]
    return [] if new == shipped else [f"{where}: {str(new)[:80]} (shipped {str(shipped)[:80]})"]


def cmd_eval(args: argparse.Namespace) -> int:
    if args.data is None:
        return _eval_bank(args)
    from chatbot.evaluate import main as eval_main

    settings = _settings()
    # five citations so hit@5 can be measured; the answer and its first three are unchanged
    with _reader(settings.model_copy(update={"top_k": max(5, settings.top_k)})) as holder:
        return eval_main(args, holder.get())


def _eval_bank(args: argparse.Namespace) -> int:
    """Leave-one-article-out over the question bank; with --heldout, the untouched articles too."""
    import json as _json

    from chatbot import rankers
    from chatbot import train as T
    from chatbot.answer.models import AnswerModels

    settings = _settings()
    # one collection, held-out articles included: indexing the bank twice in one process would
    # reopen Chroma stores deleted under a cached client
    records = T.collect(settings, args.xquad, include_heldout=True)
    heldout = T.heldout_ids()
    rep = T.report(T.leave_one_article_out([r for r in records if r.article not in heldout], settings))
    out: dict[str, Any] = {"leave_one_article_out": rep}
    held = [r for r in records if r.article in heldout]
    if args.heldout:
        out["heldout"] = T.report(T.score(AnswerModels.load(settings.models_path), held, settings))
    # the shipped linear ranker beside the trees it was chosen over, on the same folds
    work = [r for r in records if r.article not in heldout]
    out["rankers"] = rankers.compare(
        [r for r in work if r.source == "bank"],
        [r for r in work if r.source != "bank" and r.source not in T.ABSENCE_ONLY],
        held if args.heldout else [],
        {"linear": T.fit_sentence, "lightgbm_lambdarank": rankers.fit_lambdarank},
    )
    out["ranker_shipped"] = "linear"
    if args.json:
        print(_json.dumps(out, indent=1, ensure_ascii=False))
    else:
        T.print_report("leave-one-article-out (models fitted without the article scored)", rep)
        if "heldout" in out:
            T.print_report("held-out articles (questions written first, shipped models)", out["heldout"])
        print("sentence rankers (first pick / first two / some candidate right)")
        for name, figs in out["rankers"].items():
            for part, f in figs.items():
                print(f"  {name:<20} {part:<22} n={f['n']:<4} {f['first_pick_right']:.3f} / {f['top2_right']:.3f} / {f['candidate_present']:.3f}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from chatbot.web.server import serve

    if args.workers < 1:
        raise ChatbotError("--workers must be at least 1")
    settings = _settings(args)
    ensure_index(settings)  # once, here: N workers must not race to build it
    return serve(settings, host=args.host, port=args.port, workers=args.workers)


def _llm_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--llm", dest="llm", action="store_true", default=None, help="generate answers with the configured LLM")
    g.add_argument("--no-llm", dest="llm", action="store_false", help="extractive answers only, even if an LLM is configured")


def _doc_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--doc", action="append", metavar="ID",
        help="answer only from this document: its id (`index list`), page URL, the file it was added from, or the start of its id; repeatable",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chatbot", description="Cited answers about a news article (and your documents).")
    p.add_argument("-v", "--verbose", action="store_true", help="log each answer's timings to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser("ask", help="answer one question (or '-' for one per stdin line)")
    a.add_argument("question", help="the question, or '-' to read questions (or JSON objects) from stdin")
    a.add_argument("--json", action="store_true", help="print one JSON object per answer")
    _doc_flag(a)
    _llm_flags(a)
    a.set_defaults(func=cmd_ask)

    c = sub.add_parser("chat", help="interactive terminal chat with history")
    _doc_flag(c)
    _llm_flags(c)
    c.set_defaults(func=cmd_chat)

    i = sub.add_parser(
        "index",
        help="build the index; `index add PATH…`, `index list [--json]`, `index remove ID…` manage its documents",
        description="With no arguments, bring the index up to date. `add PATH…` adds or replaces documents (.txt, .md, "
        ".html files, or folders of them); `list` shows the documents; `remove ID…` takes documents out.",
    )
    i.add_argument("files", nargs="*", metavar="add|list|remove ...", help="an action and its files or ids")
    i.add_argument("--json", action="store_true", help="index list: print JSON")
    i.add_argument("--rebuild", action="store_true", help="rebuild even if nothing changed")
    i.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for another indexer to finish")
    i.add_argument(
        "--encoding", default=None, metavar="NAME",
        help="index add: the files' encoding (e.g. latin-1, cp1252); default: UTF-8, or the charset an HTML page declares",
    )  # fmt: skip
    i.set_defaults(func=cmd_index)

    t = sub.add_parser("train", help="fit the answer models on the question bank (needs the .[train] extra)")
    t.add_argument("--xquad", type=int, default=12, metavar="N", help="XQuAD titles added to the sentence-ranking data")
    t.add_argument("--fetch", action="store_true", help="first fetch the bank's fixture repositories with git (make bank)")
    t.add_argument("--check", action="store_true", help="refit into a temporary file and compare it with the shipped models")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="leave-one-article-out figures over the question bank (or --data FILE: one QA file)")
    e.add_argument("--data", default=None, help="a JSONL QA file scored on the current index instead of the bank")
    e.add_argument("--heldout", action="store_true", help="also score the untouched held-out articles with the shipped models")
    e.add_argument("--xquad", type=int, default=12, metavar="N", help="XQuAD titles added to the sentence-ranking data")
    e.add_argument("--json", action="store_true", help="print the figures as JSON")
    e.add_argument("--show-failures", action="store_true")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("serve", help="web chat, HTTP API and widget")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="processes; N > 1 serves the HTTP API and widget only (the web chat needs one process)",
    )  # fmt: skip
    _llm_flags(s)
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `index add --wait 5 FILE`: argparse gives the files' positional its values before the option
        # only; the ones after it come back here. Any other leftover is an error, as parse_args makes it.
        if getattr(args, "command", None) == "index" and args.files and not any(x.startswith("-") for x in extra):
            args.files = [*args.files, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "command", None):
        args = parser.parse_args(["chat"])
    _quiet_libraries()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    try:
        return int(args.func(args))
    except ChatbotError as exc:
        _warn(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file or socket problem no layer anticipated: still one line, no traceback
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        _warn(f"error: {exc.strerror or exc}{where}")
        return 1
    except Exception as exc:  # a bug or a library failure: one line for people, the traceback with -v
        logging.getLogger("chatbot").debug("unexpected error", exc_info=True)
        from index import store

        if store.store_failure(exc):  # the store failed midway (its first read passed): exit 6 and what to do
            failure = store.unreadable(_settings(), exc, "the index store failed")
            _warn(f"error: {failure}")
            return failure.exit_code
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        _warn(f"error: unexpected {type(exc).__name__}: {first} (run with -v for details)")
        return 1
    except BrokenPipeError:
        return 0
