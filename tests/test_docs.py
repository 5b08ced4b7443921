"""/docs works offline: Swagger UI's script and styles come from the fastapi-offline package,
served by the app itself, and the page asks no other host for anything."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.fake_llm import free_port

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole served app (API, docs, Gradio chat at /) in a thread; /docs needs no index or
    model, so the bot is a stand-in that is never asked anything."""
    from chatbot.settings import Settings
    from chatbot.web.server import create_app

    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("docs")), bot=object())  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def page_urls(html: str) -> list[str]:
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: *["']([^"']+)["']""", html)
    return ["".join(r) for r in refs]


def test_docs_page_references_only_its_own_server(app_url: str) -> None:
    r = httpx.get(app_url + "/docs", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?:|//[\w.-]+\.\w", r.text), "an external host in /docs"
    urls = page_urls(r.text)
    assets = {
        "swagger-ui-bundle.js": "javascript",
        "swagger-ui.css": "text/css",
        "favicon.png": "image/png",
        "openapi.json": "json",
    }
    assert len(urls) == len(assets) and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    for name, kind in assets.items():
        url = next(u for u in urls if u.endswith(name))
        asset = httpx.get(app_url + url, timeout=30)
        assert asset.status_code == 200 and kind in asset.headers["content-type"], url
        assert len(asset.content) > 500, url


def test_workers_app_serves_the_same_docs(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from chatbot.settings import Settings
    from chatbot.web.server import create_api_app

    client = TestClient(create_api_app(Settings(data_dir=tmp_path), bot=object()))  # type: ignore[arg-type]
    html = client.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in html and "https:" not in html
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


@pytest.mark.browser
def test_docs_render_offline_in_a_browser(app_url: str, new_page: Any) -> None:
    p = new_page()
    p.page.goto(app_url + "/docs")
    p.page.locator(".opblock-summary-path", has_text="/api/ask/stream").first.wait_for()
    assert p.page.locator(".opblock").count() >= 4  # every endpoint, from FastAPI's OpenAPI 3.1 document
    assert not p.errors, p.errors
    strays = [u for u in p.requests if not u.startswith(app_url) and not u.startswith(("data:", "blob:"))]
    assert not strays, strays
