"""The faster parser is used only where the stored entries come out as feedparser makes them."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feedserver import rss

from diffusion.collect import fastparse
from diffusion.collect.feeds import parse_feed
from diffusion.collect.fetch import FeedSource

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hostile"
SOURCE = FeedSource(id=1, name="odd", url="http://ngo.example.org/feed.xml", kind="ngo_action")
HTML = "application/rss+xml; charset=utf-8"


def _entry(number: int, **fields: object) -> dict[str, object]:
    return {
        "title": f"Literacy circle {number} & libraries",
        "link": f"http://ngo.example.org/news/{number}",
        "guid": f"urn:ngo:{number}",
        "description": f'<p>Report <a href="/r/{number}">{number}</a> <img src="i.png"></p>',
        "pubDate": datetime(2026, 11, 1 + number, 10, tzinfo=UTC),
        "categories": ["ED", "KE", "literacy", "Inclusion"],
    } | fields


STAMP = b"<item><title>Stamp</title><guid>urn:s</guid><pubDate>1763654400</pubDate></item>"
CORPUS: dict[str, tuple[bytes, str]] = {
    "plain": (rss([_entry(1), _entry(2)]), HTML),
    "no language": (rss([_entry(1)], language=None), HTML),
    "french": (rss([_entry(3, title="Été : l'apprentissage")], language="fr-FR"), HTML),
    "bare guids": (rss([_entry(4, guid="42"), _entry(5, guid="42")]), HTML),
    "no guid": (rss([{k: v for k, v in _entry(6).items() if k != "guid"}]), HTML),
    "no date": (rss([{k: v for k, v in _entry(7).items() if k != "pubDate"}]), HTML),
    "old date": (rss([_entry(1, pubDate=datetime(1900, 1, 1, tzinfo=UTC))]), HTML),
    "future date": (rss([_entry(1, pubDate=NOW + timedelta(days=900))]), HTML),
    "timestamp": (rss([_entry(1)]).replace(b"</channel>", STAMP + b"</channel>"), HTML),
    "markup in text": (rss([_entry(8, title="<b>Bold</b> &amp; <script>x()</script>")]), HTML),
    "relative link": (rss([_entry(9, link="/news/9")]), HTML),
    "latin-1": (rss([_entry(10, title="Éducation")], encoding="iso-8859-1"), HTML),
    "latin-1 header": (rss([_entry(11)]), "application/rss+xml; charset=iso-8859-1"),
    "hostile": ((FIXTURES / "entities.rss").read_bytes(), HTML),
    "atom": ((FIXTURES / "typed.atom").read_bytes(), "application/atom+xml"),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_both_parsers_store_the_same_entries(name: str) -> None:
    body, content_type = CORPUS[name]
    headers = {"content-type": content_type}
    fast = parse_feed(body, headers, SOURCE, now=NOW, default_language="en")
    slow = parse_feed(body, headers, SOURCE, now=NOW, default_language="en", fast=False)
    assert fast.rows == slow.rows
    assert fast.warning == slow.warning


def test_the_faster_parser_reads_the_plain_feeds_and_leaves_the_odd_ones() -> None:
    used = {
        name: fastparse.parse(body, {"content-type": content_type})[1]
        for name, (body, content_type) in CORPUS.items()
    }
    assert used["plain"] == used["hostile"] == used["timestamp"] == "feedparser-rs"
    for odd in ("relative link", "latin-1", "latin-1 header", "atom"):
        assert used[odd] == "feedparser", odd
