"""Web adapters over the core, all served by one process (`python app.py serve`).

- `server`: the FastAPI app factory `create_app` and `serve()` (uvicorn); CORS and body limit for /api.
- `api`: the JSON/SSE HTTP API under /api, the widget script and its demo page.
- `ui`: the Gradio chat mounted at /.
- `safe`: untrusted text (questions, corpus passages) turned into inert Markdown for Gradio.
- `loader`, `feedback`, `stream`: the shared Chatbot, the feedback JSONL file, answer replay as deltas.
- `static/widget.js`: the embeddable chat (plain JS, Shadow DOM, no build step).
"""
