"""A subscriber's journey in headless Chromium, JavaScript off, against the app under uvicorn."""

import mailbox
import re
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn

from diffusion import db
from diffusion.config import Settings, load_settings
from diffusion.models import Subscriber
from diffusion.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[Settings]:
    """`diffusion serve`'s app under uvicorn on 127.0.0.1 and a free port, in a thread."""
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
        yield settings
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


def _subscriber(settings: Settings, email: str) -> Subscriber:
    engine = db.engine_for(settings)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.select(Subscriber.__table__).where(Subscriber.__table__.c.email == email)  # type: ignore[attr-defined]
            ).one()
    finally:
        engine.dispose()
    return Subscriber(**row._mapping)


def _confirmation_link(settings: Settings) -> str:
    # The message is sent just after the page answers: give it a moment to arrive.
    deadline = time.monotonic() + 30
    while not (settings.outbox_dir / "new").is_dir() or not any(
        (settings.outbox_dir / "new").iterdir()
    ):
        assert time.monotonic() < deadline, "no confirmation message arrived"
        time.sleep(0.05)
    box = mailbox.Maildir(settings.outbox_dir, create=False)
    (key,) = box.keys()
    message = message_from_bytes(box.get_bytes(key), policy=policy.default)
    body = message.get_body(("plain",))  # type: ignore[attr-defined]
    match = re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+", body.get_content())
    assert match, body.get_content()
    return match.group(0)


def test_subscribe_confirm_change_language_and_one_click_unsubscribe(served: Settings) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no headless browser: Debian's chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    base = served.base_url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            # The pages need no JavaScript: run the whole journey without it.
            context = browser.new_context(java_script_enabled=False, locale="en-GB")
            page = context.new_page()

            page.goto(f"{base}/")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            page.get_by_label("Email address").fill("journey@example.org")
            page.get_by_label("Name (optional)").fill("Amina")
            page.get_by_label("Language of the emails").select_option("en")
            page.get_by_label("Education (ED)").check()
            page.get_by_role("button", name="Subscribe").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
            assert _subscriber(served, "journey@example.org").status == "pending"

            page.goto(_confirmation_link(served))
            expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
            assert _subscriber(served, "journey@example.org").status == "pending"
            page.get_by_role("button", name="Confirm my subscription").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Subscription confirmed")
            confirmed = _subscriber(served, "journey@example.org")
            assert confirmed.status == "active" and confirmed.consent_at is not None

            page.get_by_role("link", name="Change your preferences").click()
            expect(page.get_by_label("Language of the emails")).to_have_value("en")
            expect(page.get_by_label("Education (ED)")).to_be_checked()
            page.get_by_label("Language of the emails").select_option("fr")
            page.get_by_label("Culture (CLT)").check()
            page.get_by_role("button", name="Save my preferences").click()
            expect(page.locator("html")).to_have_attribute("lang", "fr")
            expect(page.get_by_role("status")).to_have_text("Vos préférences sont enregistrées.")
            changed = _subscriber(served, "journey@example.org")
            assert changed.language == "fr" and sorted(changed.sectors) == ["CLT", "ED"]

            # The mail client's one-click unsubscribe: a bare POST to the same link (RFC 8058).
            link = page.get_by_role("link", name="Se désabonner").get_attribute("href")
            assert link is not None
            one_click = context.request.post(
                base + link.split("?")[0],
                form={"List-Unsubscribe": "One-Click"},
                max_redirects=0,
            )
            assert one_click.status == 200
            assert _subscriber(served, "journey@example.org").status == "unsubscribed"

            # Visiting the link afterwards shows the outcome and changes nothing.
            page.goto(base + link)
            expect(page.get_by_role("heading", level=1)).to_have_text("Vous êtes désabonné·e")
        finally:
            browser.close()
