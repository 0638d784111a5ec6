"""Exact collection: links under xml:base resolved as RFC 3986 says, impossible dates refused."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feedserver import FeedServer, rss
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db
from diffusion.collect import run_collection
from diffusion.config import Settings, load_settings
from diffusion.models import Item, Source

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

# The feed's xml:base is relative (to the feed's own address); the entry's and the content's
# are relative to the one above them.
BASED_ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="../blog/">
  <id>urn:based</id><title>Based</title><updated>2026-11-12T10:00:00Z</updated>
  <entry xml:base="posts/2026/">
    <id>urn:based:1</id><title>One</title><updated>2026-11-12T10:00:00Z</updated>
    <link href="one.html"/>
    <content type="html" xml:base="../images/">&lt;p&gt;&lt;a href="a.png"&gt;a&lt;/a&gt;
      &lt;a href="../up.html"&gt;up&lt;/a&gt; &lt;a href="/root.html"&gt;root&lt;/a&gt;
      &lt;a href="//cdn.example.net/p.html"&gt;cdn&lt;/a&gt;
      &lt;img src="./pic.jpg" alt="pic"&gt;&lt;/p&gt;</content>
  </entry>
  <entry>
    <id>urn:based:2</id><title>Two</title><updated>2026-11-12T11:00:00Z</updated>
    <link href="http://elsewhere.example.org/two"/>
    <content type="xhtml" xml:base="http://static.example.org/a/b/"><div
      xmlns="http://www.w3.org/1999/xhtml"><p><a href="../../c.html">c</a></p></div></content>
  </entry>
</feed>
"""


@pytest.fixture
def setup(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[FeedServer, Engine, Settings]]:
    settings = load_settings(
        home=tmp_path, database_url=sqlite_url, secret_key="test-secret-key-for-signing-links"
    )
    engine = db.engine_for(settings)
    with FeedServer() as server:
        yield server, engine, settings
    engine.dispose()


def _add(engine: Engine, name: str, url: str) -> None:
    with db.session_scope(engine) as session:
        session.add(Source(name=name, url=url, kind="ngo_action"))


def _items(engine: Engine) -> list[Item]:
    with db.session_scope(engine) as session:
        return list(session.exec(select(Item).order_by(col(Item.guid))))


def test_links_under_xml_base_resolve_as_rfc_3986_says(
    setup: tuple[FeedServer, Engine, Settings],
) -> None:
    server, engine, settings = setup
    url = server.route(
        "/site/feeds/based.atom", BASED_ATOM.encode(), content_type="application/atom+xml"
    )
    _add(engine, "based", url)
    run_collection(engine, settings, now=NOW)
    one, two = _items(engine)
    origin = server.url("")
    assert one.link == f"{origin}/site/blog/posts/2026/one.html"
    images = f"{origin}/site/blog/posts/images/"
    assert f'href="{images}a.png"' in one.body_html
    assert f'href="{origin}/site/blog/posts/up.html"' in one.body_html
    assert f'href="{origin}/root.html"' in one.body_html
    assert 'href="http://cdn.example.net/p.html"' in one.body_html
    assert f'src="{images}pic.jpg"' in one.body_html
    assert 'href="http://static.example.org/c.html"' in two.body_html


def test_impossible_dates_become_the_fetch_time_and_are_reported(
    setup: tuple[FeedServer, Engine, Settings],
) -> None:
    server, engine, settings = setup
    body = rss(
        [
            {"title": "Fine", "guid": "urn:d:fine", "pubDate": datetime(2026, 11, 2, tzinfo=UTC)},
            {"title": "Old", "guid": "urn:d:old", "pubDate": datetime(1900, 1, 1, tzinfo=UTC)},
            {"title": "Ahead", "guid": "urn:d:ahead", "pubDate": NOW + timedelta(days=4000)},
        ]
    )
    # A Unix timestamp where a date should be: feedparser reads 1763654400 as 1 Dec 1763.
    body = body.replace(b"</channel>", b"<item><title>Stamp</title><guid>urn:d:stamp</guid>"
                        b"<pubDate>1763654400</pubDate></item></channel>")  # fmt: skip
    _add(engine, "dated", server.route("/dated.xml", body))
    summary = run_collection(engine, settings, now=NOW)
    dates = {item.title: item.published_at for item in _items(engine)}
    assert dates == {
        "Fine": datetime(2026, 11, 2, tzinfo=UTC),
        "Old": NOW,
        "Ahead": NOW,
        "Stamp": NOW,
    }
    (result,) = summary.results
    assert result.status == "ok"
    assert result.warning is not None
    assert "3 entries with an impossible or unreadable date" in result.warning
