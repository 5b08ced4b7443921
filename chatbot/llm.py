"""Generated answers through llama-index's OpenAI-like client: any OpenAI-compatible server, or a
GGUF model in process (llama.cpp's server through xllamacpp, on a loopback port).

Simplifies: the LLM only rewrites what retrieval found. It gets the same numbered passages the
extractive answer cites, marked as untrusted data; its output goes through chatbot.checks; any
failure (unreachable, timeout, error, failed check) falls back to the extractive answer with a
visible note. Prompts are files in prompts/.
"""

from __future__ import annotations

import atexit
import logging
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatbot.errors import ChatbotError
from chatbot.schema import Citation, Turn
from chatbot.settings import Settings

log = logging.getLogger("chatbot.llm")
LANGUAGE_NAMES = {"fr": "French", "en": "English", "de": "German", "es": "Spanish", "it": "Italian", "nl": "Dutch"}


class LLMUnavailable(ChatbotError):
    """The configured language model cannot be loaded or reached."""

    exit_code = 8
    http_status = 503


def load_llm(settings: Settings) -> Any | None:
    """The configured llama-index LLM, or None when generation is off or not configured."""
    if not settings.llm_enabled:
        return None
    if settings.llm_gguf:
        server = gguf_server(settings)
        return _openai_like(settings, server.url, server.model, server.api_key)
    if settings.llm_base_url:
        return _openai_like(
            settings, settings.llm_base_url, settings.llm_model or "default", settings.llm_api_key.get_secret_value()
        )
    return None


def _openai_like(settings: Settings, base_url: str, model: str, api_key: str) -> Any:
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(
        model=model,
        api_base=base_url,
        api_key=api_key or "not-needed",
        is_chat_model=True,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        context_window=settings.llm_context_window,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_retries,
    )


_GGUF_SERVERS: dict[tuple[str, int, int], Any] = {}
_GGUF_LOCK = threading.Lock()


def gguf_server(settings: Settings) -> Any:
    """The in-process llama.cpp server for CHATBOT_LLM_GGUF (chatbot.llm_server), started on first
    use on a free loopback port with a random API key; one per model file, context and thread
    count, shared by every Chatbot of the process and stopped at exit."""
    path = Path(settings.llm_gguf)
    if not path.is_file():
        raise LLMUnavailable(f"CHATBOT_LLM_GGUF={settings.llm_gguf!r}: no such model file")
    key = (str(path.resolve()), settings.llm_context_window, settings.llm_threads)
    with _GGUF_LOCK:
        server = _GGUF_SERVERS.get(key)
        if server is None:
            from chatbot.llm_server import start

            try:
                server = start(
                    path, n_ctx=settings.llm_context_window, threads=settings.llm_threads, api_key=secrets.token_urlsafe(24)
                )
            except ImportError as exc:
                raise LLMUnavailable("in-process GGUF models need the optional extra: pip install -e '.[gguf]'") from exc
            except RuntimeError as exc:
                raise LLMUnavailable(f"CHATBOT_LLM_GGUF={settings.llm_gguf!r}: llama.cpp could not load it ({exc})") from exc
            log.info("GGUF model %s served in process at %s (loaded in %.2fs)", path.name, server.url, server.seconds)
            if not _GGUF_SERVERS:
                atexit.register(stop_gguf_servers)
            _GGUF_SERVERS[key] = server
    return server


def stop_gguf_servers() -> None:
    """Stop the in-process GGUF servers (at exit, or in tests)."""
    with _GGUF_LOCK:
        for server in _GGUF_SERVERS.values():
            server.stop()
        _GGUF_SERVERS.clear()


class Prompter:
    """Builds chat messages from the prompt files; untrusted text is always inside tags."""

    def __init__(self, prompts_dir: Path) -> None:
        self.system = (prompts_dir / "system.txt").read_text(encoding="utf-8")
        self.context = (prompts_dir / "context.txt").read_text(encoding="utf-8")
        self.passage = (prompts_dir / "passage.txt").read_text(encoding="utf-8")
        self.condense_template = (prompts_dir / "condense.txt").read_text(encoding="utf-8")

    def messages(self, question: str, lang: str, citations: list[Citation]) -> list[Any]:
        from llama_index.core.llms import ChatMessage

        name = LANGUAGE_NAMES.get(lang, lang or "the question's language")
        passages = "\n".join(
            self.passage.format(id=c.id, section=_attr(c.section), author=_attr(c.author), text=_untag(c.text)) for c in citations
        )
        return [
            ChatMessage(role="system", content=self.system.format(language_name=name)),
            ChatMessage(
                role="user", content=self.context.format(passages=passages, question=_untag(question), language_name=name)
            ),
        ]

    def condense(self, question: str, history: list[Turn]) -> list[Any]:
        from llama_index.core.llms import ChatMessage

        convo = "\n".join(f"{t.role}: {_untag(t.content)}" for t in history[-6:])
        return [ChatMessage(role="user", content=self.condense_template.format(history=convo, question=_untag(question)))]


_TAG = re.compile(
    r"(?:<|\uff1c|\ufe64|&lt;?|&#0*60;?|&#x0*3c;?)(\s*/?\s*)(?=(?:passage|question|conversation|last_message)\b)", re.I
)


def _untag(text: str) -> str:
    """Untrusted text can neither open nor close our delimiters (<passage …>, </question>, in any
    case or spacing, fullwidth or as an HTML entity) to pose as instructions or as another passage."""
    return _TAG.sub(lambda m: "<\u200b" + m.group(1).strip(), text)


def _attr(text: str) -> str:
    return " ".join(_untag(text).replace('"', "'").split())


def stream_chat(llm: Any, messages: list[Any], secret: str = "") -> Iterator[str]:
    """Token deltas from the model; any client error becomes LLMUnavailable (with the API key scrubbed)."""
    try:
        for chunk in llm.stream_chat(messages):
            if chunk.delta:
                yield chunk.delta
    except ChatbotError:
        raise
    except Exception as exc:  # network, HTTP 5xx, timeout, malformed stream: all mean "no usable answer"
        text = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise LLMUnavailable(text.replace(secret, "***") if secret else text) from None


def condense(llm: Any, prompter: Prompter, question: str, history: list[Turn]) -> str | None:
    """A standalone question from the model, or None when it fails (the caller keeps its own)."""
    try:
        out = llm.chat(prompter.condense(question, history)).message.content or ""
    except Exception as exc:  # the rule-based resolution stays in charge
        log.warning("condense failed: %s", type(exc).__name__)
        return None
    line = out.strip().splitlines()[0].strip() if out.strip() else ""
    return line if 3 <= len(line) <= 500 else None
