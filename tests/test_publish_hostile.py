"""Hostile feeds collected over HTTP reach no HTML field of what we publish as markup.

Every feed we write is read back by feedparser with its sanitiser switched off, as a careless
reader would show it; the email and the web pages are read with an HTML parser.
"""

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import pytest
from executable import executable
from feedserver import FeedServer
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db, render
from diffusion.collect import run_collection
from diffusion.config import Settings, load_settings
from diffusion.deliver.feeds import build_feeds
from diffusion.editions import digest_for
from diffusion.models import Item, Source
from diffusion.select.rules import load_rules

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hostile"
# The words of the hostile titles, as the text a reader must see (never run).
TITLE_TEXTS = (
    '<script>alert("title as text")</script> Literacy week',
    "Youth forum",  # an RSS title's markup is dropped: RSS readers take titles for HTML
    '<script>alert("atom text title")</script> Culture days',
)


@pytest.fixture
def collected(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Engine, Settings]]:
    settings = load_settings(
        home=tmp_path,
        database_url=sqlite_url,
        secret_key="test-secret-key-for-signing-links",
        languages=["en", "fr"],
    )
    engine = db.engine_for(settings)
    with FeedServer() as server:
        for name, kind in (("entities.rss", "rss"), ("typed.atom", "atom")):
            url = server.route(
                f"/{name}",
                (FIXTURES / name).read_bytes(),
                content_type=f"application/{kind}+xml; charset=utf-8",
            )
            with db.session_scope(engine) as session:
                session.add(Source(name=name, url=url, kind="ngo_action", tags={"sectors": ["CI"]}))
        summary = run_collection(engine, settings, now=NOW)
    assert [result.status for result in summary.results] == ["ok", "ok"]
    yield engine, settings
    engine.dispose()


def _html_fields(parsed: Any, fmt: str) -> Iterator[tuple[str, str]]:
    """(name, value) of every field a reader may show as HTML.

    RSS says nothing of its titles' type, and readers differ: every RSS text counts as HTML.
    Atom text constructs say their type: only html and xhtml ones count.
    """
    holders = [("feed", parsed.feed), *((f"entry {n}", e) for n, e in enumerate(parsed.entries))]
    for where, holder in holders:
        details = [holder.get(f"{name}_detail") for name in ("title", "subtitle", "summary")]
        details += list(holder.get("content") or [])
        for detail in details:
            if detail and (fmt == "rss" or "html" in (detail.get("type") or "")):
                yield where, detail["value"]


def test_no_published_feed_carries_anything_executable(
    collected: tuple[Engine, Settings], tmp_path: Path
) -> None:
    engine, settings = collected
    out = tmp_path / "feeds"
    build_feeds(engine, settings, rules=load_rules(settings.routing), out=out, now=NOW)
    feeds = sorted(path for path in out.rglob("*") if path.suffix in (".rss", ".atom"))
    assert feeds
    seen_titles: set[str] = set()
    checked = 0
    for path in feeds:
        fmt = path.suffix[1:]
        parsed = feedparser.parse(
            path.read_bytes(), sanitize_html=False, resolve_relative_uris=False
        )
        assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
        for where, value in _html_fields(parsed, fmt):
            checked += 1
            assert executable(value) == [], (path.relative_to(out), where, value)
        for entry in parsed.entries:
            title = entry.title_detail
            shown = html.unescape(title.value) if "html" in title.type else title.value
            seen_titles.add(shown)
    assert checked > 100
    # The hostile words are still there, as the text they are.
    assert set(TITLE_TEXTS) <= seen_titles


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _text_of(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return " ".join(" ".join(parser.parts).split())


def test_the_email_shows_hostile_titles_as_text(collected: tuple[Engine, Settings]) -> None:
    engine, settings = collected
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
    rendered = render.render_digest(digest, settings)
    assert executable(rendered.html) == []
    text = _text_of(rendered.html)
    for title in TITLE_TEXTS:
        assert title in text


def test_stored_bodies_are_sanitised(collected: tuple[Engine, Settings]) -> None:
    engine, _settings = collected
    with db.session_scope(engine) as session:
        stored = list(session.exec(select(Item)))
    assert len(stored) == 5
    for item in stored:
        assert executable(item.body_html) == [], item.guid


def test_the_web_pages_show_hostile_items_as_text(collected: tuple[Engine, Settings]) -> None:
    import warnings

    from diffusion.runtime import Runtime
    from diffusion.web import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    engine, settings = collected
    with db.session_scope(engine) as session:
        ids = [item.id for item in session.exec(select(Item))]
    with TestClient(create_app(Runtime(settings, engine=engine))) as client:
        pages = [client.get(f"/items/{item_id}").text for item_id in ids]
        pages += [client.get(f"/news/public?lang={lang}").text for lang in ("en", "fr")]
        pages.append(client.get("/news/sector/CI").text)
    for page in pages:
        assert executable(page) == []
    shown = " ".join(_text_of(page) for page in pages)
    for title in TITLE_TEXTS:
        assert title in shown
