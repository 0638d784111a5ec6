"""A subscriber's journey in headless Chromium, JavaScript off, against the app under uvicorn."""

import mailbox
import re
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from types import SimpleNamespace

import pytest
from appserver import serving
from sqlmodel import Session
from starlette.types import ASGIApp

from diffusion import db, subscriptions
from diffusion.config import Settings, load_settings
from diffusion.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[Settings]:
    """`diffusion serve`'s app under uvicorn on 127.0.0.1 and a free port, in a thread."""
    chosen: list[Settings] = []

    def app(base_url: str) -> ASGIApp:
        chosen.append(
            load_settings(
                home=tmp_path,
                database_url=sqlite_url,
                secret_key="browser-secret-for-signing-links-0123456789",
                base_url=base_url,
            )
        )
        return create_app(chosen[0])

    with serving(app):
        yield chosen[0]


def _subscriber(settings: Settings, email: str) -> SimpleNamespace:
    """The person, with `held`: {audience[:key]: (status, sectors)} of their subscriptions."""
    engine = db.engine_for(settings)
    # The request is recorded just after the page answers: give it a moment to be stored.
    deadline = time.monotonic() + 30
    try:
        with Session(engine) as session:
            person = subscriptions.find_person(session, email)
            while person is None and time.monotonic() < deadline:
                time.sleep(0.05)
                person = subscriptions.find_person(session, email)
            assert person is not None
            held = {
                (f"{s.audience}:{s.key}" if s.key else s.audience): (s.status, sorted(s.sectors))
                for s in subscriptions.subscriptions_of(session, person)
            }
            return SimpleNamespace(**person.model_dump(), held=held)
    finally:
        engine.dispose()


def _confirmation_links(settings: Settings, count: int) -> set[str]:
    """The confirmation links of the first `count` messages, once that many have arrived."""
    # The message is sent just after the page answers: give it a moment to arrive.
    deadline = time.monotonic() + 30
    new = settings.outbox_dir / "new"
    while not new.is_dir() or len(list(new.iterdir())) < count:
        assert time.monotonic() < deadline, "no confirmation message arrived"
        time.sleep(0.05)
    box = mailbox.Maildir(settings.outbox_dir, create=False)
    found = set()
    for key in box.keys():
        message = message_from_bytes(box.get_bytes(key), policy=policy.default)
        body = message.get_body(("plain",))  # type: ignore[attr-defined]
        match = re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+", body.get_content())
        assert match, body.get_content()
        found.add(match.group(0))
    return found


def test_subscribe_confirm_add_leave_and_one_click_unsubscribe(served: Settings) -> None:
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
            # The form says which choices wait for an editor's approval.
            expect(page.get_by_label("I receive it as")).to_contain_text(
                "Liaison Committee (needs an editor's approval)"
            )
            page.get_by_label("Email address").fill("journey@example.org")
            page.get_by_label("Name (optional)").fill("Amina")
            page.get_by_label("Language of the emails").select_option("en")
            page.get_by_label("Education (ED)").check()
            page.get_by_role("button", name="Subscribe").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
            assert _subscriber(served, "journey@example.org").status == "pending"

            (first,) = _confirmation_links(served, 1)
            page.goto(first)
            expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
            assert _subscriber(served, "journey@example.org").status == "pending"
            page.get_by_role("button", name="Confirm my subscription").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Subscription confirmed")
            confirmed = _subscriber(served, "journey@example.org")
            assert confirmed.status == "active" and confirmed.consent_at is not None
            assert confirmed.held == {"public": ("active", ["ED"])}

            # Preferences: the language, then the subscription's own choices.
            page.get_by_role("link", name="Change your preferences").click()
            expect(page.get_by_label("Language of the emails")).to_have_value("en")
            expect(page.get_by_label("Education (ED)")).to_be_checked()
            page.get_by_label("Language of the emails").select_option("fr")
            page.get_by_role("button", name="Save my preferences").click()
            expect(page.locator("html")).to_have_attribute("lang", "fr")
            expect(page.get_by_role("status")).to_have_text("Vos préférences sont enregistrées.")
            page.get_by_label("Culture (CLT)").check()
            page.get_by_role("button", name="Enregistrer cet abonnement").click()
            changed = _subscriber(served, "journey@example.org")
            assert changed.language == "fr" and changed.held["public"] == ("active", ["CLT", "ED"])

            # Add a subscription: nothing changes until its confirmation link is used.
            page.get_by_label("Je la reçois en tant que").select_option("national_commission")
            # By its name in the page's language: no code to know.
            page.get_by_label("Pays", exact=True).select_option(label="Bangladesh")
            page.get_by_role("button", name="M'envoyer un lien de confirmation").click()
            expect(page.get_by_role("status")).to_contain_text("Un lien pour confirmer")
            assert set(_subscriber(served, "journey@example.org").held) == {"public"}
            (second,) = _confirmation_links(served, 2) - {first}
            page.goto(second)
            page.get_by_role("button", name="Confirmer mon abonnement").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Abonnement confirmé")
            both = _subscriber(served, "journey@example.org").held
            assert both == {
                "public": ("active", ["CLT", "ED"]),
                "national_commission:BD": ("active", []),
            }

            # Leave one: the other stays.
            page.get_by_role("link", name="Modifier vos préférences").click()
            expect(page.locator("section.subscription")).to_have_count(2)
            commission = page.locator("section.subscription", has_text="Commission nationale")
            commission.get_by_role("button", name="Quitter cet abonnement").click()
            expect(page.get_by_role("status")).to_contain_text("Vous avez quitté")
            held = _subscriber(served, "journey@example.org").held
            assert held["national_commission:BD"][0] == "left" and held["public"][0] == "active"
            assert _subscriber(served, "journey@example.org").status == "active"

            # The mail client's one-click unsubscribe: a bare POST to the same link (RFC 8058).
            link = page.get_by_role("link", name="Se désabonner").get_attribute("href")
            assert link is not None
            one_click = context.request.post(
                base + link.split("?")[0],
                form={"List-Unsubscribe": "One-Click"},
                max_redirects=0,
            )
            assert one_click.status == 200
            gone = _subscriber(served, "journey@example.org")
            assert gone.status == "unsubscribed" and gone.held["public"][0] == "left"

            # Visiting the link afterwards shows the outcome and changes nothing.
            page.goto(base + link)
            expect(page.get_by_role("heading", level=1)).to_have_text("Vous êtes désabonné·e")
        finally:
            browser.close()
