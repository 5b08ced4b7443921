"""The one core call: `Chatbot.answer(question, history) -> Answer`. Every adapter (CLI, web
chat, HTTP API, widget) is a thin layer over it.

Loading (embedder, Chroma, BM25) happens once in the constructor; `answer` is thread-safe.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from chatbot.errors import InvalidQuestion
from chatbot.followup import resolve
from chatbot.labels import present
from chatbot.language import Messages, detect
from chatbot.question import Mentions, QuestionInfo, analyze, fold
from chatbot.schema import Answer, Citation, Delta, Event, Final, Turn
from chatbot.settings import Settings

log = logging.getLogger("chatbot")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # cannot be encoded; the language detector chokes on them


def validate(question: Any, history: Any, settings: Settings) -> tuple[str, list[Turn]]:
    """Checks done before any model work; raises InvalidQuestion with a message for people."""
    if not isinstance(question, str):
        raise InvalidQuestion("the question must be a string")
    if _SURROGATE.search(question):
        raise InvalidQuestion("the question is not valid Unicode text (it contains a lone surrogate)")
    question = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", question).strip()
    if not question:
        raise InvalidQuestion("the question is empty")
    if len(question) > settings.max_question_chars:
        raise InvalidQuestion(
            f"the question is too long ({len(question)} characters; the limit is {settings.max_question_chars})"
        )
    turns: list[Turn] = []
    if history is None:
        history = []
    if not isinstance(history, list):
        raise InvalidQuestion("history must be a list of {role, content} objects")
    if len(history) > settings.max_history_turns * 2:
        raise InvalidQuestion(f"the history is too long ({len(history)} messages; the limit is {settings.max_history_turns * 2})")
    total = 0
    for item in history:
        if isinstance(item, Turn):
            turns.append(item)
            continue
        if (
            not isinstance(item, Mapping)
            or item.get("role") not in ("user", "assistant")
            or not isinstance(item.get("content"), str)
        ):
            raise InvalidQuestion('each history item must be {"role": "user"|"assistant", "content": str}')
        if _SURROGATE.search(item["content"]):
            raise InvalidQuestion("the history is not valid Unicode text (it contains a lone surrogate)")
        total += len(item["content"])
        turns.append(Turn(item["role"], item["content"]))
    if total > settings.max_history_chars:
        raise InvalidQuestion(f"the history is too long ({total} characters; the limit is {settings.max_history_chars})")
    return question, turns


@dataclass
class Prepared:
    question: str  # validated
    resolved: str  # as it would be asked alone (follow-ups resolved)
    info: QuestionInfo
    qvec: np.ndarray
    own: np.ndarray | None  # the follow-up's own words embedded, when they differ from `resolved`
    hits: list[Any]
    language: str
    followup: bool
    previous: str  # the last assistant turn


class Chatbot:
    def __init__(
        self, settings: Settings | None = None, embedder: Any = None, client: Any = None, warn: Any = None, fitted: bool = True
    ) -> None:
        from chatbot.answer.extract import Extractor
        from chatbot.retrieve import Retriever

        self.settings = settings or Settings()
        if embedder is None:
            from index.embed import load_embedder

            embedder = load_embedder(
                self.settings.embed_model, self.settings.embed_fallbacks, self.settings.embed_threads, warn=warn
            )
        self.embedder = embedder
        self.messages = Messages(self.settings.prompts_dir / "messages.json")
        self.mentions = Mentions(self.settings.prompts_dir / "aliases.json")
        self.retriever = Retriever(self.settings, embedder, client)
        self._views: OrderedDict[tuple[str, ...], Chatbot] = OrderedDict()
        self._views_lock = threading.Lock()
        from chatbot.answer.models import AnswerModels

        models = AnswerModels.load(self.settings.models_path) if fitted else None  # unfitted: training collects features
        self.extractor = Extractor(self.settings, self.retriever, self.messages, self.mentions, models)
        self.vocabulary = self._proper_nouns()
        detect("warm up the language models", self.settings.languages)  # the detector loads lazily: not on the first question
        from chatbot.llm import Prompter, load_llm

        self.llm = load_llm(self.settings)
        self.prompter = Prompter(self.settings.prompts_dir) if self.llm is not None else None

    def _proper_nouns(self) -> set[str]:
        """Folded words written with a capital inside a sentence of a non-German passage, plus aliases.
        German questions capitalise every noun; only these count as names there."""
        words: set[str] = set()
        for chunk in self.retriever.chunks.values():
            if chunk.meta.get("language") == "de":
                continue
            for m in re.finditer(r"(?<=[\w,;:] )([A-Z][\w-]+)", chunk.text):
                words.add(fold(m.group(1)))
        for group in self.mentions.groups:
            words.update(group)
        return words

    def reloaded(self, client: Any = None) -> Chatbot:
        """This bot on the index the pointer names now, sharing the loaded models (embedder,
        answer models, LLM); this one is untouched and keeps answering meanwhile."""
        import copy

        from chatbot.answer.extract import Extractor
        from chatbot.retrieve import Retriever

        new = copy.copy(self)
        new._views, new._views_lock = OrderedDict(), threading.Lock()
        new.retriever = Retriever(self.settings, self.embedder, client, previous=self.retriever)
        new.extractor = Extractor(self.settings, new.retriever, self.messages, self.mentions, self.extractor.models)
        new.vocabulary = new._proper_nouns()
        return new

    @property
    def index_info(self) -> Any:
        return self.retriever.info

    @property
    def scope(self) -> tuple[str, ...]:
        """The ids of the documents this bot answers from."""
        return self.retriever.scope

    def documents(self) -> list[dict[str, Any]]:
        """What the index holds, a dict per document (id, title, language, date, source, units…)."""
        out = []
        for doc_id, d in self.retriever.all_documents.items():
            out.append(
                {"id": doc_id, **{k: d[k] for k in ("title", "language", "date", "author", "source", "url", "units", "added_at")}}
            )
        return out

    def find_documents(self, names: str | Iterable[str] | None, exact: bool = False) -> tuple[str, ...] | None:
        """The ids that names name (None: no scope asked): a document id or page URL, else (unless
        `exact`, as for a host page's URL) the file a document was added from or the start of its id.
        UnknownDocument if one names none; AmbiguousDocument, listing them, if one names several."""
        from chatbot.documents import match_document
        from chatbot.errors import AmbiguousDocument, UnknownDocument

        if names is None or names == "" or names == []:
            return None
        wanted = [names] if isinstance(names, str) else list(names)
        docs = self.retriever.all_documents
        out: list[str] = []
        for name in wanted:
            if not isinstance(name, str) or not name.strip():
                raise UnknownDocument("a document must be named by its id (a non-empty string)")
            found = match_document(name, docs, self.retriever.url_index, exact=exact)
            if not found:
                raise UnknownDocument(
                    f"no document {name[:200]!r} in the index; the documents are listed at /api/documents and by `python app.py index list`"
                )
            if len(found) > 1:
                listed = ", ".join(f"{i} ({docs[i].get('source') or '?'})" for i in found[:10])
                more = f" and {len(found) - 10} more" if len(found) > 10 else ""
                raise AmbiguousDocument(f"{name[:200]!r} names {len(found)} documents: {listed}{more}; give more of the id")
            if found[0] not in out:
                out.append(found[0])
        return tuple(out)

    def scoped(self, names: str | Iterable[str] | None) -> Chatbot:
        """This bot confined to the named documents (ids or page URLs): retrieval, the refusal test and
        follow-ups see nothing else. With no names, or all of them, it is this bot. Views are cached."""
        ids = self.find_documents(names)
        if ids is None or set(ids) == set(self.retriever.all_documents) or ids == self.scope:
            return self
        key = tuple(sorted(ids))
        with self._views_lock:
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
                return view
        view = self._view(key)
        with self._views_lock:
            self._views[key] = view
            while len(self._views) > self.settings.scope_cache:
                self._views.popitem(last=False)
        return view

    def _view(self, ids: tuple[str, ...]) -> Chatbot:
        import copy

        from chatbot.answer.extract import Extractor

        new = copy.copy(self)
        new.retriever = self.retriever.view(ids)
        new.extractor = Extractor(self.settings, new.retriever, self.messages, self.mentions, self.extractor.models)
        # names stay those of every document: a German question's "Nordbahn" is a name the scope
        # lacks (so refused), not a common noun to look past
        new.vocabulary = self.vocabulary
        return new

    def language_of(self, question: str, history: list[Turn]) -> str:
        code, confidence = detect(question, self.settings.languages)
        if confidence < self.settings.language_min_confidence:
            for turn in reversed(history):
                if turn.role == "user":
                    prev, prev_conf = detect(turn.content, self.settings.languages)
                    if prev and prev_conf >= confidence:
                        return prev
                    break
        return code or self.settings.default_language

    def answer(self, question: Any, history: Iterable[Any] | None = None) -> Answer:
        """The answer, checked and cited (the last event of `stream`)."""
        final: Answer | None = None
        for event in self.stream(question, history):
            if isinstance(event, Final):
                final = event.answer
        assert final is not None
        return final

    def prepare(self, question: Any, history: Iterable[Any] | None = None) -> Prepared:
        """The steps before the answer decision, shared by `stream` and by training so both see
        the same inputs."""
        question, turns = validate(question, list(history) if history is not None else None, self.settings)
        lang = self.language_of(question, turns)
        resolved = resolve(question, turns, lang)
        if self.llm is not None and turns and self.settings.llm_condense:
            from chatbot.llm import condense

            resolved = condense(self.llm, self.prompter, question, turns) or resolved  # type: ignore[arg-type]
        info = analyze(resolved, lang, self.vocabulary)
        if resolved.endswith(" " + question) and resolved != question:
            # an elliptic follow-up glued to the previous question: its own names are the subject now
            own_names = analyze(question, lang, self.vocabulary).entities
            info.entities = own_names or info.entities
        qvec = self.retriever.embed_query(resolved)
        own = self.retriever.embed_query(question) if resolved != question else None
        hits = self.retriever.search(resolved, qvec)
        previous = next((t.content for t in reversed(turns) if t.role == "assistant"), "")
        return Prepared(question, resolved, info, qvec, own, hits, lang, bool(turns), previous)

    def decide(self, p: Prepared) -> Any:
        """The extractive draft for a prepared question (answer or refusal, with confidence)."""
        return self.extractor.answer(p.info, p.qvec, p.hits, p.language, followup=p.followup, own=p.own, previous=p.previous)

    def stream(self, question: Any, history: Iterable[Any] | None = None) -> Iterator[Event]:
        """Deltas of the answer as it forms, then one Final with the checked answer and citations.
        Validation errors are raised before anything is yielded."""
        t0 = time.perf_counter()
        p = self.prepare(question, history)
        question, resolved, info, lang = p.question, p.resolved, p.info, p.language
        t2 = time.perf_counter()
        draft = self.decide(p)
        citations = self._citations(draft)
        t3 = time.perf_counter()
        timings = {"retrieve": (t2 - t0) * 1000, "answer": (t3 - t2) * 1000, "total": (t3 - t0) * 1000}
        result = self._answer(draft, question, lang, resolved, citations, timings)
        # with a model configured, it reads every question the absence model does not rule out,
        # whatever the extractive confidence: the checks, not that confidence, decide what is stated
        events = (
            self._generate(result, draft, self._citations(draft, self.settings.llm_passages), resolved, t0)
            if self.llm is not None and citations and draft.status != "not_found"
            else self._replay(result)
        )
        for event in events:
            if isinstance(event, Final):
                event = replace(event, answer=present(event.answer, self.retriever, self.messages))  # labels, scope's words
                # one structured line per answer; the question itself only at DEBUG (it may be personal)
                a = event.answer
                log.info(
                    json.dumps(
                        {
                            "event": "answer",
                            "language": lang,
                            "answered": a.answered,
                            "status": a.status,
                            "kind": info.kind,
                            "citations": [c.id for c in a.citations],
                            "timings_ms": {k: round(v, 1) for k, v in a.timings_ms.items()},
                            "reason": draft.reason or None,
                            "llm": self.llm is not None,
                            "notes": len(a.notes),
                            "confidence": round(a.confidence, 3),
                        }
                    )
                )
                log.debug("question=%r resolved=%r", question, resolved)
            yield event

    def _answer(
        self, draft: Any, question: str, lang: str, resolved: str, citations: list[Citation], timings: dict[str, float]
    ) -> Answer:
        return Answer(
            question=question,
            answer=draft.text,
            answered=draft.status == "answered",
            language=lang,
            citations=citations,
            timings_ms=timings,
            resolved_question=resolved if resolved != question else "",
            confidence=draft.confidence,
            status=draft.status,
        )

    def _unsure_of(self, extractive: Answer, draft: Any) -> Answer:
        """The extractive candidates shown as "not sure" (what a failed generated answer falls back to)."""
        from dataclasses import replace

        if draft.unsure is None or draft.status == "unsure":
            return extractive
        return replace(
            extractive, answer=draft.unsure.text, answered=False, status="unsure", citations=self._citations(draft.unsure)
        )

    @staticmethod
    def _replay(answer: Answer) -> Iterator[Event]:
        """An extractive answer is complete at once; replay it a few words at a time for streaming UIs."""
        for piece in re.findall(r"\S+\s*", answer.answer):
            yield Delta(piece)
        yield Final(answer)

    def _generate(self, extractive: Answer, draft: Any, context: list[Citation], question: str, t0: float) -> Iterator[Event]:
        """Stream the LLM's answer from the `context` passages (the extractive citations first, then
        more of retrieval), then check it. A checked answer is `answered`; one the checks reject, or
        the model's "not in the passages" that the absence model does not share, is `unsure` with
        the extractive candidate; an unreachable model leaves the extractive answer as it was."""
        from dataclasses import replace

        from chatbot.checks import Known, check
        from chatbot.llm import LLMUnavailable, stream_chat
        from chatbot.question import folded_words

        assert self.prompter is not None
        lang = extractive.language
        messages = self.prompter.messages(question, lang, context)
        pieces: list[str] = []
        first: float | None = None
        t_llm = time.perf_counter()
        try:
            for token in stream_chat(self.llm, messages, self.settings.llm_api_key.get_secret_value()):
                first = first or time.perf_counter()
                pieces.append(token)
                yield Delta(token)
        except LLMUnavailable as exc:
            log.warning("llm failed, extractive fallback: %s", exc)
            note = self.messages.get("llm_fallback", lang)
            yield Final(replace(extractive, notes=[note]), replaced=bool(pieces))
            return
        streamed = "".join(pieces)
        timings = dict(extractive.timings_ms)
        timings["llm"] = (time.perf_counter() - t_llm) * 1000
        timings["first_token"] = ((first or time.perf_counter()) - t0) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        checked = check(
            streamed,
            {c.id: c.text for c in context},
            self.prompter.system,
            allow_links=self.settings.llm_allow_links,
            known=Known(
                equivalents=self.retriever.equivalents,
                common=self.retriever.word_cases[0],
                names=self.retriever.word_cases[1],
                asked=folded_words(question),
            ),
        )
        unsure = self._unsure_of(extractive, draft)
        if checked.refused and draft.absent >= self.settings.llm_absence_agree:
            text = self.extractor._not_found(lang, [], [], "llm").text
            final = replace(extractive, answer=text, answered=False, status="not_found", timings_ms=timings)
            final.citations = [replace(c, quoted=False, highlight=None) for c in final.citations]
            yield Final(final, replaced=True)
        elif checked.refused:
            note = self.messages.get("llm_unsure", lang)
            yield Final(replace(unsure, notes=[note], timings_ms=timings), replaced=True)
        elif not checked.usable:
            reason = "; ".join(checked.problems) or "no cited sentence"
            log.warning("llm answer rejected: %s", reason)
            note = self.messages.get("llm_rejected", lang, reason=reason)
            yield Final(replace(unsure, notes=[note], timings_ms=timings), replaced=True)
        else:
            notes = [self.messages.get("llm_corrected", lang, reason="; ".join(checked.problems))] if checked.problems else []
            # what the model cited, then the extractive answer's other passages; ids stay as the model saw them
            cited = [replace(c, quoted=True) for c in context if c.id in checked.cited] or extractive.citations
            others = [replace(c, quoted=False) for c in extractive.citations if c.id not in {x.id for x in cited}]
            final = replace(
                extractive,
                answer=checked.text,
                answered=True,
                status="answered",
                citations=cited + others,
                notes=notes,
                timings_ms=timings,
            )
            yield Final(final, replaced=checked.text != streamed.strip())

    def _citations(self, draft: Any, limit: int = 0) -> list[Citation]:
        """The passages the draft used, then the other hits, `limit` (default top_k) in all."""
        out: list[Citation] = []
        chunks = [*draft.used, *(h.chunk for h in draft.others)]
        for chunk in chunks[: max(limit, self.settings.top_k)] if draft.used or draft.others else []:
            meta = chunk.meta
            out.append(
                Citation(
                    id=len(out) + 1,
                    text=chunk.text,
                    section=str(meta.get("section", "")),
                    source=str(meta.get("source", "")),
                    score=round(float(draft.scores.get(chunk.id, 0.0)), 4),
                    start=int(meta.get("start", 0)),
                    end=int(meta.get("end", 0)),
                    author=str(meta.get("author", "")),
                    heading=str(meta.get("heading", "")),
                    highlight=draft.highlight.get(chunk.id),
                    document=str(meta.get("doc_id", "")),
                    document_title=str(self.retriever.documents.get(str(meta.get("doc_id", "")), {}).get("title", "")),
                    quoted=chunk in draft.used,
                )
            )
        return out
