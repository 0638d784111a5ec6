"""Rendered emails in headless Chromium: no sideways scrolling, contrast, direction, inertness."""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_render import contrast, hostile_digest, sample_digest, sample_entry, sample_settings

from diffusion import render
from diffusion.contracts import Digest, Section

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and shutil.which("chromium") is None:
    pytest.skip(
        "headless Chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extras")

WIDTHS = (375, 600)
# For each visible element holding text of its own: its colour, the colour behind it, its text.
TEXT_COLOURS_JS = """
() => {
  const out = [];
  const opaque = (c) => c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c);
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].filter(n => n.nodeType === 3 && n.textContent.trim());
    if (!own.length) continue;
    const rect = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!rect.width || !rect.height) continue;
    if (style.visibility === 'hidden' || style.opacity === '0') continue;
    let node = el, bg = null;
    while (node && node.nodeType === 1) {
      const b = getComputedStyle(node).backgroundColor;
      if (opaque(b)) { bg = b; break; }
      node = node.parentElement;
    }
    const text = own.map(n => n.textContent.trim()).join(' ');
    out.push([style.color, bg || 'rgb(255, 255, 255)', text]);
  }
  return out;
}
"""


def _hex(css: str) -> str:
    numbers = [int(n) for n in re.findall(r"\d+", css)[:3]]
    return "#" + "".join(f"{n:02x}" for n in numbers)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def _digests() -> dict[str, Digest]:
    many = tuple(sample_entry(n, summary="Long summary words. " * 40) for n in range(500))
    long_words = sample_entry(
        1,
        title="Supercalifragilistic" * 6,
        link="https://ngo.example.org/" + "very-long-path-segment-" * 12,
        summary="https://ngo.example.org/" + "x" * 200,
    )
    return {
        "ngo-en": sample_digest("ngo"),
        "sector-fr": sample_digest("sector", language="fr"),
        "public-ar": sample_digest("public", language="ar"),
        "liaison-500": sample_digest(
            "liaison_committee", sections=(Section("ngo_action", "NGO actions", many),)
        ),
        "long-words": sample_digest(
            "member_state", sections=(Section("event", "Events", (long_words,)),)
        ),
        "hostile": hostile_digest(),
    }


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    settings = sample_settings(tmp_path_factory.mktemp("browser"))
    return {name: render.render_digest(d, settings).html for name, d in _digests().items()}


def _open(browser: object, html: str, width: int) -> object:
    page = browser.new_page(viewport={"width": width, "height": 800})  # type: ignore[attr-defined]
    # Images off, and nothing fetched from the network: what a cautious mail client shows.
    page.route("**/*", lambda route: route.abort())
    page.set_content(html, wait_until="load")
    return page


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(_digests()))
def test_no_horizontal_scrolling(
    browser: object, pages: dict[str, str], name: str, width: int
) -> None:
    page = _open(browser, pages[name], width)
    scroll_width, inner_width = page.evaluate(  # type: ignore[attr-defined]
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )
    page.close()  # type: ignore[attr-defined]
    assert scroll_width <= inner_width, f"{name} at {width}px scrolls to {scroll_width}px"


@pytest.mark.parametrize("name", ["ngo-en", "sector-fr", "public-ar", "hostile"])
def test_every_visible_text_meets_wcag_aa(
    browser: object, pages: dict[str, str], name: str
) -> None:
    page = _open(browser, pages[name], 600)
    texts = page.evaluate(TEXT_COLOURS_JS)  # type: ignore[attr-defined]
    page.close()  # type: ignore[attr-defined]
    assert len(texts) > 10
    low = [
        (text[:40], colour, background, round(contrast(_hex(colour), _hex(background)), 2))
        for colour, background, text in texts
        if contrast(_hex(colour), _hex(background)) < 4.5
    ]
    assert low == []


def test_language_and_direction_in_the_browser(browser: object, pages: dict[str, str]) -> None:
    page = _open(browser, pages["public-ar"], 375)
    lang, direction, heading_direction, align = page.evaluate(  # type: ignore[attr-defined]
        """[document.documentElement.lang, document.documentElement.dir,
            getComputedStyle(document.querySelector('h2')).direction,
            getComputedStyle(document.querySelector('h2').parentElement).textAlign]"""
    )
    page.close()  # type: ignore[attr-defined]
    assert (lang, direction, heading_direction, align) == ("ar", "rtl", "rtl", "right")


def test_readable_with_images_off_and_links_present(browser: object, pages: dict[str, str]) -> None:
    page = _open(browser, pages["ngo-en"], 375)
    text = page.evaluate("document.body.innerText")  # type: ignore[attr-defined]
    hrefs = page.evaluate(  # type: ignore[attr-defined]
        "[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))"
    )
    page.close()  # type: ignore[attr-defined]
    for phrase in ("NGO actions", "Entry 1: literacy programme", "Unsubscribe", "More online"):
        assert phrase in text
    assert "[[diffusion:unsubscribe_url]]" in hrefs and "[[diffusion:preferences_url]]" in hrefs


def test_hostile_content_runs_nothing(browser: object, pages: dict[str, str]) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.route("**/*", lambda route: route.abort())
    page.set_content(pages["hostile"], wait_until="load")
    page.evaluate(
        "document.querySelectorAll('*').forEach(el => { el.dispatchEvent(new Event('mouseover'));"
        " el.dispatchEvent(new Event('error')); el.dispatchEvent(new Event('click')); })"
    )
    scripts = page.evaluate("document.scripts.length")
    text = page.evaluate("document.body.innerText")
    page.close()
    assert dialogs == [] and scripts == 0
    assert '<script>alert("t")</script>' in text  # shown as text, not run
