"""Web adapters over the core (`python app.py serve`): one process serves them all; with
`--workers N` (N > 1), N processes serve the stateless ones (API, widget) and no web chat.

- `server`: the app factories (`create_app`, `create_api_app`, `worker_app`) and `serve()` (uvicorn).
- `gate`: in front of /api: CORS, rate limit per client, queue limit, body size.
- `api`: the JSON/SSE HTTP API under /api, the widget script and its demo page.
- `ui`: the Gradio chat mounted at /.
- `safe`: untrusted text (questions, corpus passages) turned into inert Markdown for Gradio.
- `feedback`, `stream`: the feedback JSONL file, answer replay as deltas (the shared Chatbot is `chatbot.holder`).
- `static/widget.js`: the embeddable chat (plain JS, Shadow DOM, no build step).
"""
