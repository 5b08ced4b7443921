"""The Gradio chat mounted at /: multi-turn, streamed answers, numbered collapsible sources.

Simplifies: the visible chat is a pure function of a per-session list of turns (question and
Answer) kept in gr.State; every event re-renders it. History for the core, the like/dislike
mapping and "New chat" all read that list, never the rendered Markdown.

With several documents indexed, a picker confines the answers to one of them (`/?doc=ID` preselects
it; an id or a page URL). The picker's value is the scope: each question asks
`holder.get().scoped(value or None)`, and the title, welcome, placeholder and examples come from
`interface_words` for that scope. Choosing another document starts a new chat.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from chatbot.documents import interface_words
from chatbot.errors import ChatbotError, UnknownDocument
from chatbot.holder import BotHolder
from chatbot.language import Messages
from chatbot.schema import Answer
from chatbot.settings import Settings
from chatbot.web.feedback import FeedbackLog
from chatbot.web.safe import answer_markdown, inert, passage_markdown, source_title
from chatbot.web.stream import AnswerStream

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a server that may be offline
import gradio as gr  # noqa: E402  (after the environment switch above)

log = logging.getLogger("chatbot.web")
Turns = list[dict[str, Any]]  # {"question": str, "answer": Answer | None}
ALL = ""  # the picker's value for "every document" (no document id is empty)


def warn(text: str) -> None:
    """A warning toast showing `text` as text. Gradio renders a toast's message as HTML (sanitized,
    but links, images, forms and styles survive): `/?doc=<a href=…>Session expired</a>` showed a
    live link on our page. Escaped, every character is shown as typed."""
    gr.Warning(html.escape(text))


def render(
    turns: Turns, msgs: Messages, lang: str, partial: str | None = None, thinking: str | None = None
) -> tuple[list[dict[str, Any]], list[int]]:
    """Chatbot messages for the turns, and for each message the index of its turn.

    `partial` is the streamed prefix of the last answer (its sources appear once it is complete);
    `thinking` what is shown before it (the scope's words: "Searching the documents…").
    """
    chat: list[dict[str, Any]] = []
    owners: list[int] = []
    for i, turn in enumerate(turns):
        answer: Answer | None = turn["answer"]
        last = i == len(turns) - 1
        chat.append({"role": "user", "content": inert(turn["question"])})
        ids = {c.id for c in answer.citations} if answer else set()
        if answer is None or (last and partial is not None):
            text = partial or thinking or msgs.get("thinking", lang)
            chat.append({"role": "assistant", "content": answer_markdown(text, i, ids)})
        else:
            notes = "".join(f"\n\n_{inert(note)}_" for note in answer.notes)  # e.g. "the generated answer was corrected"
            # an empty marker the stylesheet finds with :has(): the bubble reads as "not sure" or "not found"
            outcome = f'<span class="outcome-{answer.status}"></span>' if answer.status != "answered" else ""
            chat.append({"role": "assistant", "content": outcome + answer_markdown(answer.answer, i, ids) + notes})
            for c in answer.citations:
                # a "not sure" answer's quoted candidates are shown open: the reader judges them
                shown_open = answer.status == "unsure" and c.quoted
                chat.append(
                    {
                        "role": "assistant",
                        "content": passage_markdown(c),
                        "metadata": {"title": source_title(c, i)} if shown_open else {"title": source_title(c, i), "status": "done"},
                    }
                )
        owners += [i] * (len(chat) - len(owners))
    return chat, owners


def core_history(turns: Turns, settings: Settings) -> list[dict[str, str]]:
    """The most recent answered turns that fit the core's history limits."""
    out: list[dict[str, str]] = []
    chars = 0
    for turn in reversed(turns):
        answer: Answer | None = turn["answer"]
        if answer is None:
            continue
        size = len(turn["question"]) + len(answer.answer)
        if len(out) + 2 > settings.max_history_turns * 2 or chars + size > settings.max_history_chars:
            break
        out[:0] = [{"role": "user", "content": turn["question"]}, {"role": "assistant", "content": answer.answer}]
        chars += size
    return out


def document_choices(documents: list[dict[str, Any]], all_label: str) -> list[tuple[str, str]]:
    """The picker's (label, value) pairs: every document by its title (with its file when two share
    one), after an "all documents" choice when there are several."""
    titles = [str(d.get("title") or d["id"]) for d in documents]
    choices = [
        (f"{t} ({d.get('source') or d['id']})" if titles.count(t) > 1 else t, str(d["id"]))
        for t, d in zip(titles, documents, strict=True)
    ]
    return [(all_label, ALL), *choices] if len(choices) > 1 else choices


def build_chat(holder: BotHolder, feedback: FeedbackLog, messages: Messages, settings: Settings) -> gr.Blocks:
    lang = settings.default_language
    examples = [
        q for code in ("en", "fr", "de") for q in messages.get("example_questions", code).split("\n")[: 2 if code == "en" else 1]
    ]

    def title_html(text: str) -> str:
        return f"<h1>{html.escape(text)}</h1>"

    def scope_view(bot: Any, doc: str, clear: bool) -> tuple[Any, Any, Any]:
        """Title, chat (its welcome and examples) and question box for a scope; `clear`: emptied too
        (not on page load, where a question typed meanwhile must survive)."""
        words = interface_words(messages, bot.scoped(doc or None).retriever.documents, lang)
        chat: dict[str, Any] = {"placeholder": inert(words["welcome"]), "examples": [{"text": q} for q in words["examples"]]}
        box: dict[str, Any] = {"placeholder": words["placeholder"]}
        if clear:
            chat["value"], box["value"] = [], ""
        return title_html(words["title"]), gr.update(**chat), gr.update(**box)

    def on_load(request: gr.Request) -> tuple[Any, ...]:
        """The documents of the served index in the picker, `?doc=` preselected, and the scope's words."""
        bot = holder.get()
        documents = bot.documents()
        choices = document_choices(documents, messages.get("doc_all", lang))
        doc = ALL if len(choices) > 1 else (choices[0][1] if choices else ALL)
        wanted = (request.query_params.get("doc") or "").strip() if request is not None else ""
        if wanted:
            try:
                ids = bot.find_documents(wanted)
                if ids and len(ids) == 1:
                    doc = ids[0]
            except UnknownDocument as exc:
                warn(str(exc))
        picker = gr.update(choices=choices, value=doc, visible=len(choices) > 1)
        return (picker, *scope_view(bot, doc, clear=False), doc)

    def on_pick(doc: str | None, current: str | None) -> tuple[Any, ...]:
        """Another document: a new chat, with that document's words. The dropdown also reports its
        unchanged value when it loses focus: that keeps the chat."""
        doc = doc or ALL
        if doc == (current or ALL):
            return (gr.skip(),) * 5
        try:
            return (*scope_view(holder.get(), doc, clear=True), [], doc)
        except UnknownDocument as exc:  # dropped from the index since the page loaded
            warn(str(exc))
            return (gr.skip(),) * 5

    async def respond(message: str, turns: Turns, doc: str | None = ALL) -> AsyncIterator[tuple[Any, Any, Turns]]:
        question = (message or "").strip()
        if not question:
            warn(messages.get("error_empty", lang))
            yield message, gr.skip(), turns
            return
        turns = [*turns, {"question": question, "answer": None}]
        try:
            bot = await run_in_threadpool(holder.get)
            bot = await run_in_threadpool(bot.scoped, doc or None)
            thinking = interface_words(messages, bot.retriever.documents, lang)["thinking"]
            yield "", render(turns, messages, lang, thinking=thinking)[0], turns
            stream = await AnswerStream.open(bot, question, core_history(turns[:-1], settings))
            shown = ""
            async for kind, value in stream.events(settings.stream_delay_ms / 1000, words=3):
                if kind == "delta":
                    shown += value
                    yield "", render(turns, messages, lang, partial=shown)[0], turns
                else:
                    turns[-1] = {"question": question, "answer": value}
        except Exception as exc:  # the adapter boundary: the visitor gets a message, the log the details
            if not isinstance(exc, ChatbotError):
                log.exception("web chat: unexpected error")
            warn(str(exc) if isinstance(exc, ChatbotError) else messages.get("error_generic", lang))
            yield message, render(turns[:-1], messages, lang)[0], turns[:-1]
            return
        yield "", render(turns, messages, turns[-1]["answer"].language)[0], turns

    def on_like(turns: Turns, data: gr.LikeData) -> None:
        if data.liked not in (True, False):
            return  # a removed vote, or another option
        index = data.index if isinstance(data.index, int) else data.index[0]
        owners = render(turns, messages, lang)[1]
        if 0 <= index < len(owners) and (answer := turns[owners[index]]["answer"]) is not None:
            feedback.append(
                turns[owners[index]]["question"], answer.answer, "up" if data.liked else "down", "web", language=answer.language
            )

    def pick_example(data: gr.SelectData) -> str:
        value = data.value
        return str(value.get("text", "")) if isinstance(value, dict) else str(value)

    with gr.Blocks(title=messages.get("title", lang), fill_height=True, fill_width=False) as demo:
        turns = gr.State([])
        scope = gr.State(ALL)  # the picker's value the chat was started with
        with gr.Row(elem_id="topbar"):
            title = gr.HTML(title_html(messages.get("title", lang)), elem_id="title", padding=False)
            new_chat = gr.Button(
                messages.get("new_chat", lang), variant="secondary", size="sm", scale=0, min_width=110, elem_id="new-chat"
            )
        picker = gr.Dropdown(
            choices=[],
            value=None,
            label=messages.get("doc_picker", lang),
            visible=False,  # shown on load when the index holds several documents
            interactive=True,
            elem_id="doc-picker",
        )
        chat = gr.Chatbot(
            elem_id="chat",
            show_label=False,
            scale=1,  # with fill_height: the chat takes the window's height and scrolls inside
            min_height=320,
            layout="bubble",
            sanitize_html=True,  # defence in depth: untrusted text is already inert (chatbot/web/safe.py)
            render_markdown=True,
            allow_tags=False,
            latex_delimiters=[],
            buttons=[],  # "copy" would copy the escaped Markdown source, not the text
            feedback_options=("Like", "Dislike"),
            placeholder=inert(messages.get("welcome", lang)),
            examples=[{"text": q} for q in examples],
        )
        box = gr.Textbox(
            placeholder=messages.get("placeholder", lang),
            show_label=False,
            lines=1,
            max_lines=6,
            max_length=settings.max_question_chars,
            submit_btn=True,
            autofocus=True,
            elem_id="question",
        )
        box.submit(respond, [box, turns, picker], [box, chat, turns], api_name="ask", show_progress="hidden")
        chat.example_select(pick_example, None, box, api_visibility="private").then(
            respond, [box, turns, picker], [box, chat, turns], api_visibility="private", show_progress="hidden"
        )
        demo.load(
            on_load,
            None,
            [picker, title, chat, box, scope],
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
        )
        picker.input(
            on_pick,
            [picker, scope],
            [title, chat, box, turns, scope],
            api_visibility="private",
            show_progress="hidden",
            concurrency_limit=None,
        )
        chat.clear(lambda: [], None, turns, api_visibility="private", concurrency_limit=None)
        chat.like(on_like, [turns], None, api_visibility="private", concurrency_limit=None)
        new_chat.click(lambda: ("", [], []), None, [box, chat, turns], api_visibility="private", concurrency_limit=None)
    demo.queue(default_concurrency_limit=settings.web_concurrency, max_size=settings.web_queue_size)
    return demo


CSS = """
/* one width whatever the chat holds (a long answer, a refusal's short one): not sized by content */
.gradio-container { width: min(980px, 100%) !important; max-width: 980px !important; margin: 0 auto !important; }
#chat { width: 100% !important; }
/* the chat's clear (trash) button inside the box, not on its border */
#chat .icon-button-wrapper.top-panel { top: 8px !important; right: 8px !important; background: var(--block-background-fill);
  border-radius: 6px; }
/* thumbs up, then down: as in the widget (Gradio renders "Dislike" first) */
#chat .icon-button-wrapper button[aria-label="Like"] { order: -1; }
#topbar { align-items: center; flex-wrap: nowrap; }
#title h1 { margin: 0; font-size: 1.5rem; font-weight: 700; }
#chat .placeholder { padding: 0 16px; text-align: center; color: var(--body-text-color-subdued); }
#chat .thought-group .content .message-content { opacity: 1 !important; }
#chat .thought-group .content .message-content p { font-size: 0.95rem !important; line-height: 1.5; }
#chat mark { background: #fde68a; color: inherit; font-size: inherit; padding: 0 .1em; border-radius: 3px; }
#chat a.cite { text-decoration: none; font-weight: 700; padding: 0 .1em; color: var(--color-accent); cursor: pointer; }
#chat a.cite:hover { text-decoration: underline; }
#chat .message:has(.outcome-unsure):not(:has(.message .outcome-unsure)) { border: 2px dashed #d97706 !important; background: #fffbeb !important; }
#chat .message:has(.outcome-not_found):not(:has(.message .outcome-not_found)) { border: 1px solid #cbd5e1 !important; background: #f8fafc !important; color: #475569; }
@media (max-width: 640px) {
  #title h1 { font-size: 1.2rem; }
  #chat .message-row.bot-row { max-width: calc(100% - 12px) !important; }
  #chat .message-wrap { padding-right: 30px !important; }  /* a column for the clear button: no message under it */
}
"""

# On phones, less page padding. Clicking a [n] marker opens its source block and scrolls to it. The blocks start closed, and
# the sanitizer keeps href but drops data-* attributes, so the target comes from the href.
HEAD = """<style>
/* here, not in css=: Gradio scopes that CSS inside .contain, and this padding is outside it */
@media (max-width: 640px) { .gradio-container .main.app { padding: 8px 8px !important; } }
</style>
<script>
document.addEventListener("click", function (ev) {
  var link = ev.target && ev.target.closest ? ev.target.closest("a.cite") : null;
  var id = link ? (link.getAttribute("href") || "").slice(1) : "";
  if (!/^src-\\d+-\\d+$/.test(id)) return;
  ev.preventDefault();
  ev.stopPropagation();
  var target = document.getElementById(id);
  if (!target) return;
  var title = target.closest(".title");
  if (title && !title.classList.contains("expanded")) title.click();
  (target.closest(".thought-group") || target).scrollIntoView({ behavior: "smooth", block: "center" });
}, true);
</script>"""
