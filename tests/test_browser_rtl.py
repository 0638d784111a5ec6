"""Arabic in headless Chromium: the email and the pages are mirrored, English stays left."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from digest_dataset import NOW, store
from starlette.testclient import TestClient

from diffusion import db
from diffusion.config import Settings, load_settings
from diffusion.preview import build_preview
from diffusion.select.rules import load_rules
from diffusion.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and shutil.which("chromium") is None:
    pytest.skip(
        "headless Chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extras")

# Where the text of the first element matching a test sits, and where its box is:
# [text left, text right, box left, box right] in CSS pixels.
TEXT_EXTENT_JS = """
(needle) => {
  const el = [...document.querySelectorAll(needle.selector)]
    .find(e => e.textContent.includes(needle.text));
  if (!el) return null;
  const range = document.createRange();
  range.selectNodeContents(el);
  const text = range.getBoundingClientRect();
  const box = el.getBoundingClientRect();
  return [text.left, text.right, box.left, box.right];
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("rtl")
    settings = load_settings(
        home=home,
        database_url=f"sqlite:///{home / 'digest.db'}",
        secret_key="test-secret-key-for-signing-links",
        base_url="https://diffusion.example.org",
    )
    db.upgrade(settings.database)
    engine = db.make_engine(settings.database)
    store(engine)
    engine.dispose()
    yield settings


def _email(settings: Settings, language: str) -> str:
    engine = db.make_engine(settings.database)
    try:
        preview = build_preview(
            engine,
            settings,
            rules=load_rules(settings.routing),
            audience="ngo:ifla",
            language=language,
            subscriber_email=None,
            period="2026-11",
            now=NOW,
        )
    finally:
        engine.dispose()
    return preview.html


def _extent(browser: object, html: str, selector: str, text: str, shot: Path) -> list[float]:
    page = browser.new_page(viewport={"width": 600, "height": 900})  # type: ignore[attr-defined]
    page.route("**/*", lambda route: route.abort())
    page.set_content(html, wait_until="load")
    page.screenshot(path=str(shot), full_page=True)
    extent = page.evaluate(TEXT_EXTENT_JS, {"selector": selector, "text": text})
    page.close()
    assert extent is not None, f"no {selector} holding {text!r}"
    return [float(value) for value in extent]


def test_the_arabic_email_is_mirrored_and_its_english_items_are_not(
    browser: object, settings: Settings, tmp_path: Path
) -> None:
    arabic = _email(settings, "ar")
    # The greeting: short, so where it sits shows the alignment.
    left, right, box_left, box_right = _extent(
        browser, arabic, "p", "Ana Sample", tmp_path / "email-ar.png"
    )
    assert box_right - right < 2 and left - box_left > 200, "the greeting is not on the right"
    # An English item in the Arabic email: its title starts on the left.
    left, right, box_left, box_right = _extent(
        browser, arabic, "h3", "Ifla reading bd", tmp_path / "email-ar.png"
    )
    assert left - box_left < 2 and box_right - right > 100, "the English title is not on the left"
    # The same greeting in English sits on the left: the layout is mirrored, not just aligned.
    left, right, box_left, box_right = _extent(
        browser, _email(settings, "en"), "p", "Ana Sample", tmp_path / "email-en.png"
    )
    assert left - box_left < 2 and box_right - right > 200
    assert (tmp_path / "email-ar.png").stat().st_size > 10_000


def test_the_arabic_pages_are_mirrored(browser: object, settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings)) as client:
        html = client.get("/?lang=ar").text
    page = browser.new_page(viewport={"width": 800, "height": 900})  # type: ignore[attr-defined]
    page.route("**/*", lambda route: route.abort())
    page.set_content(html, wait_until="load")
    page.screenshot(path=str(tmp_path / "subscribe-ar.png"), full_page=True)
    name, nav, heading, main = page.evaluate(  # type: ignore[attr-defined]
        """[document.querySelector('.site-name'), document.querySelector('header nav'),
            document.querySelector('h1'), document.querySelector('main')]
           .map(e => { const r = e.getBoundingClientRect(); return [r.left, r.right]; })"""
    )
    heading_text = page.evaluate(TEXT_EXTENT_JS, {"selector": "h1", "text": "الاشتراك"})
    page.close()  # type: ignore[attr-defined]
    # The site's name opens the header at the right edge of the content, as the picker does
    # when it wraps below it (in English both start at the left edge).
    assert abs(name[1] - main[1] + 16) < 2 and abs(nav[1] - main[1] + 16) < 2, (name, nav, main)
    # The title starts at the right edge of the content.
    assert heading_text is not None and heading[1] - heading_text[1] < 2
    assert heading_text[0] - main[0] > 100
