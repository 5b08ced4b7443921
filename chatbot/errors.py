"""The exception tree. Adapters (CLI, HTTP, web) turn these into user-facing messages."""


class ChatbotError(Exception):
    """Root of every error this project raises on purpose."""

    exit_code = 1
    http_status = 500


class InvalidQuestion(ChatbotError):
    """Empty, too long, or malformed question or history."""

    exit_code = 2
    http_status = 422


class CorpusError(ChatbotError):
    """A document could not be read or parsed."""

    exit_code = 3
    http_status = 400


class UnknownDocument(ChatbotError):
    """A document id (or page URL) that names no indexed document."""

    exit_code = 2
    http_status = 404


class AmbiguousDocument(UnknownDocument):
    """A document name (file name or id prefix) that fits several indexed documents."""

    http_status = 422


class IndexNotReady(ChatbotError):
    """No complete index to read; run `python app.py index`."""

    exit_code = 4
    http_status = 503


class IndexLocked(ChatbotError):
    """Another indexer holds the write lock."""

    exit_code = 5
    http_status = 409


class StoreUnavailable(ChatbotError):
    """The Chroma store (folder or server) cannot be reached or written."""

    exit_code = 6
    http_status = 503


class StoreDamaged(StoreUnavailable):
    """The embedded store's files cannot be read (a damaged database, whatever the library says):
    `python app.py index --rebuild` sets them aside and rebuilds from the kept documents."""


class EmbedderUnavailable(ChatbotError):
    """No configured embedding model could be loaded."""

    exit_code = 7
    http_status = 503


class ModelMissing(IndexNotReady):
    """The fitted answer models are absent or unreadable; run `python app.py train`."""
