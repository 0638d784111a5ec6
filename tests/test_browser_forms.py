"""Headless Chromium, JavaScript off, on the demo data: a reader subscribes by picking names.

An NGO, a Sector, a Field Office and a country are each chosen by their name in the page's
language (English and Arabic), a theme from the list; the confirmed, approved subscription's
digest holds items.
"""

import mailbox
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from appserver import serving
from click.testing import CliRunner
from starlette.types import ASGIApp

from diffusion import db, i18n, subscriptions, vocabulary
from diffusion.cli import cli
from diffusion.config import Settings, load_settings
from diffusion.editions import digest_for
from diffusion.select.rules import load_rules
from diffusion.vocabulary import sector_name
from diffusion.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser
IFLA = "International Federation of Library Associations and Institutions (IFLA)"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("forms")
    result = CliRunner().invoke(cli, ["--home", str(home), "demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    chosen: list[Settings] = []

    def app(base_url: str) -> ASGIApp:
        chosen.append(
            load_settings(
                home=home, secret_key="forms-browser-secret-0123456789abcdef", base_url=base_url
            )
        )
        return create_app(chosen[0])

    with serving(app):
        yield chosen[0]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"no headless browser: Debian's chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def _confirm_link(settings: Settings, email: str) -> str:
    """The confirmation link mailed to `email`, once it has arrived."""
    deadline = time.monotonic() + 30
    while True:
        if (settings.outbox_dir / "new").is_dir():
            box = mailbox.Maildir(settings.outbox_dir, create=False)
            for key in box.keys():
                message = message_from_bytes(box.get_bytes(key), policy=policy.default)
                if message["To"] == email:
                    body = message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
                    found = re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+", body)
                    assert found, body
                    return found.group(0)
        assert time.monotonic() < deadline, f"no confirmation message to {email}"
        time.sleep(0.05)


def _approve_and_digest(settings: Settings, email: str) -> tuple[dict[str, list[str]], int]:
    """Their subscriptions (key: themes), approved as an editor would; their digest's size."""
    engine = db.engine_for(settings)
    try:
        with db.session_scope(engine) as session:
            person = subscriptions.find_person(session, email)
            assert person is not None
            origin = subscriptions.Origin("cli", "test editor")
            subscriptions.approve(
                session, subscriptions.waiting(session, email), origin=origin, now=NOW
            )
            held = {
                f"{s.audience}:{s.key}": list(s.themes)
                for s in subscriptions.subscriptions_of(session, person)
                if s.status == "active"
            }
        digest = digest_for(
            engine,
            settings,
            rules=load_rules(settings.routing),
            audience="",
            key="",
            language="en",
            period=None,
            now=NOW,
            subscriber_email=email,
        )
        return held, digest.item_count
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("language", "audience", "key_type", "option", "key", "theme"),
    [
        ("ar", "ngo", "organisation", lambda lang: IFLA, "ifla", "access-to-information"),
        ("en", "ngo", "organisation", lambda lang: IFLA, "ifla", None),
        ("ar", "sector", "sector", lambda lang: sector_name("ED", lang), "ED", None),
        ("en", "sector", "sector", lambda lang: sector_name("ED", lang), "ED", "quality-education"),
        ("ar", "field_office", "field_office", lambda lang: "Dhaka", "dhaka", None),
        ("en", "field_office", "field_office", lambda lang: "Dhaka", "dhaka", None),
        ("ar", "member_state", "country", lambda lang: i18n.country_name("BD", lang), "BD", None),
        ("en", "national_commission", "country", lambda lang: "Bangladesh", "BD", None),
    ],
)
def test_a_reader_picks_the_key_by_name_and_the_subscription_gets_items(
    served: Settings,
    browser: object,
    language: str,
    audience: str,
    key_type: str,
    option: object,
    key: str,
    theme: str | None,
) -> None:
    from playwright.sync_api import expect

    from diffusion.web.choices import list_label

    words = i18n.words(language)
    email = f"{audience}.{key.lower()}.{language}.{theme or 'all'}@example.org"
    context = browser.new_context(java_script_enabled=False)  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.goto(f"{served.base_url}/?lang={language}")
        expect(page.locator("html")).to_have_attribute("dir", i18n.direction(language))
        page.get_by_label(words.gettext("Email address")).fill(email)
        page.get_by_label(words.gettext("I receive it as")).select_option(audience)
        name = option(language)  # type: ignore[operator]
        page.get_by_label(list_label(key_type, language), exact=True).select_option(label=name)
        if theme:
            page.get_by_label(theme.replace("-", " "), exact=True).check()
        page.locator('form[action="/subscribe"] button[type=submit]').click()
        expect(page.get_by_role("heading", level=1)).to_have_text(words.gettext("Check your inbox"))
        page.goto(_confirm_link(served, email))
        page.locator("form button[type=submit]").click()
        expect(page.get_by_role("heading", level=1)).not_to_have_text(
            words.gettext("This link cannot be used")
        )
        held, items = _approve_and_digest(served, email)
        assert held == {f"{audience}:{key}": [theme] if theme else []}
        assert items > 0  # a theme from the list never empties the digest
        # The preferences page says what the reader is subscribed as, by name.
        page.get_by_role("link", name=words.gettext("Change your preferences")).click()
        subscribed = page.locator("ul.subscribed-as")
        expect(subscribed).to_contain_text(vocabulary.audience_label(audience, language))
        expect(subscribed).to_contain_text(name)
    finally:
        context.close()
