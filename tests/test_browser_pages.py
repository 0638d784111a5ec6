"""Published pages in headless Chromium under the security headers: styled, nothing refused."""

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from digest_dataset import store

from diffusion import db, links, render
from diffusion.config import Settings, load_settings
from diffusion.deliver.feeds import build_feeds
from diffusion.editions import digest_for
from diffusion.models import Edition
from diffusion.select.rules import load_rules
from diffusion.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extras")

if not CHROMIUM.exists():
    pytest.skip("headless Chromium is not installed at /usr/bin/chromium", allow_module_level=True)


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Settings, int]]:
    """The app under uvicorn with the dataset, its feeds and one sent public edition."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    settings = load_settings(
        home=tmp_path,
        database_url=sqlite_url,
        secret_key="browser-secret-for-signing-links-0123456789",
        base_url=f"http://127.0.0.1:{port}",
    )
    engine = db.engine_for(settings)
    store(engine)
    build_feeds(
        engine, settings, rules=load_rules(settings.routing), out=settings.feeds_dir, now=NOW
    )
    digest = digest_for(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="public",
        key="",
        language="en",
        period="2026-11",
        now=NOW,
    )
    with db.session_scope(engine) as session:
        edition = Edition(segment="public|en|monthly", audience="public", language="en",
                          period="2026-11", subject="November", status="sent", created_at=NOW,
                          sent_at=NOW)  # fmt: skip
        session.add(edition)
        session.flush()
        assert edition.id is not None
        edition_id = edition.id
        rendered = render.render_digest(
            digest, settings, web_url=links.archive_url(settings, edition_id)
        )
        edition.html = rendered.html
    engine.dispose()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield settings, edition_id
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


def test_the_published_pages_are_styled_and_the_policy_refuses_nothing(
    served: tuple[Settings, int],
) -> None:
    settings, edition_id = served
    base = settings.base_url.rstrip("/")
    ours = ("/archive/", "/news/public", "/news/sector/ED?lang=fr", "/items/ifla-reading-bd",
            "/directory/?lang=fr", "/items/nowhere")  # fmt: skip
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            refused: list[str] = []
            page.on(
                "console",
                lambda message: (
                    refused.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            for path in ours:
                page.goto(base + path)
                # The layout's <style> block: the header's rule and the body's font.
                border = page.eval_on_selector(
                    "header", "e => getComputedStyle(e).borderBottomStyle"
                )
                font = page.eval_on_selector("body", "e => getComputedStyle(e).fontFamily")
                assert border == "solid" and "system-ui" in font, path
            # The web version is the email: its inline styles apply too.
            page.goto(f"{base}/archive/{edition_id}")
            width = page.eval_on_selector("nav", "e => getComputedStyle(e).maxWidth")
            assert width == "600px"
            assert refused == []
        finally:
            browser.close()
