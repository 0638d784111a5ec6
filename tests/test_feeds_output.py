"""Feeds: every file we write is read back by feedparser, served over HTTP, and stable."""

import functools
import html
import http.server
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from digest_dataset import NOW, directory, items, store
from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.cli import cli
from diffusion.config import Settings, bundled_path, load_settings
from diffusion.deliver.feeds import FEED_MAX_ENTRIES, build_feeds, write_feeds
from diffusion.models import Item
from diffusion.select.rules import load_rules
from tests import goldens

GOLDEN = goldens.ROOT / "feeds"
RULES = load_rules(bundled_path("routing"))
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & ]]> \x07bell'


def _settings(tmp_path: Path) -> Settings:
    return load_settings(
        home=tmp_path,
        base_url="https://diffusion.example.org",
        secret_key="test-secret-key-for-signing-links",
    )


def _write(tmp_path: Path, extra: list[Item] | None = None) -> Path:
    out = tmp_path / "feeds"
    write_feeds([*items(), *(extra or [])], directory(), RULES, _settings(tmp_path), out=out)
    return out


def _all_feeds(out: Path) -> list[Path]:
    return sorted(path for path in out.rglob("*") if path.suffix in (".rss", ".atom"))


def test_every_feed_parses_cleanly_with_language_self_link_and_newest_first(
    tmp_path: Path,
) -> None:
    out = _write(tmp_path)
    feeds = _all_feeds(out)
    names = {path.relative_to(out).as_posix() for path in feeds}
    assert {
        "public.en.rss",
        "public.fr.atom",
        "sector/ED.en.atom",
        "country/BD.fr.rss",
        "field_office/dhaka.en.atom",
        "ngo/ifla.en.rss",
    } <= names
    languages = len(_settings(tmp_path).languages)  # the six UN languages by default
    keys = 1 + 3 + 5 + 3 + len(directory().countries() | {"CO", "SN"})
    assert len(feeds) == keys * languages * 2
    for path in feeds:
        relative = path.relative_to(out).as_posix()
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.bozo == 0, (relative, parsed.get("bozo_exception"))
        assert parsed.version == ("rss20" if path.suffix == ".rss" else "atom10")
        language = relative.rsplit(".", 2)[1]
        assert parsed.feed.language == language
        self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
        assert self_links == [f"https://diffusion.example.org/feeds/{relative}"]
        dates = [entry.published_parsed for entry in parsed.entries]
        assert dates == sorted(dates, reverse=True), relative
        assert len({entry.id for entry in parsed.entries}) == len(parsed.entries)


def test_feeds_carry_routed_public_items_with_categories_and_translations(
    tmp_path: Path,
) -> None:
    out = _write(tmp_path)
    bangladesh = feedparser.parse((out / "country/BD.fr.atom").read_bytes())
    # The Member State's actions and the National Commission's office activities, October too.
    assert [entry.title for entry in bangladesh.entries] == [
        "Dhaka office literacy",
        "Cercles de lecture au Bangladesh",
        "October action",
    ]
    entry = bangladesh.entries[1]
    assert entry.id == "tag:diffusion.example.org,2026:item:ifla-reading-bd"
    assert entry.link == "https://news.example/ifla-reading-bd"
    assert {tag.term for tag in entry.tags} == {"CI", "BD", "ifla"}
    assert {tag.scheme for tag in entry.tags} == {
        "tag:diffusion.example.org,2026:sectors",
        "tag:diffusion.example.org,2026:countries",
        "tag:diffusion.example.org,2026:organisations",
    }
    # Private items never appear in a feed, whoever the audience.
    kenya = feedparser.parse((out / "country/KE.en.rss").read_bytes())
    assert kenya.entries == []
    colombia = feedparser.parse((out / "country/CO.en.rss").read_bytes())
    assert colombia.entries == []  # the Medellín conclusion is not public
    everything = feedparser.parse((out / "public.en.atom").read_bytes())
    public_guids = {item.guid for item in items() if item.public}
    assert len(everything.entries) == len(public_guids)
    assert not any("private" in entry.id for entry in everything.entries)
    english = feedparser.parse((out / "sector/CI.en.rss").read_bytes())
    assert english.feed.title == "Communication and Information — NGO-UNESCO Partnership Diffusion"
    assert english.feed.updated_parsed[:3] == (2026, 11, 12)  # the newest item, not "now"


def test_entries_are_bounded(tmp_path: Path) -> None:
    many = [
        Item(
            id=100 + number,
            guid=f"urn:bulk:{number}",
            kind="event",
            title=f"Event {number}",
            published_at=datetime(2026, 9, 1, tzinfo=UTC) + timedelta(hours=number),
            content_hash=f"{number:064d}",
        )
        for number in range(FEED_MAX_ENTRIES + 10)
    ]
    out = _write(tmp_path, many)
    parsed = feedparser.parse((out / "public.en.atom").read_bytes())
    assert len(parsed.entries) == FEED_MAX_ENTRIES
    assert parsed.entries[0].id == "tag:diffusion.example.org,2026:item:action-en-francais"
    assert "urn:bulk:0" not in {entry.id for entry in parsed.entries}  # the oldest left out


def test_hostile_titles_come_out_as_inert_text(tmp_path: Path) -> None:
    hostile = Item(
        id=200,
        guid="urn:hostile:1",
        kind="event",
        title=HOSTILE,
        summary=HOSTILE,
        published_at=datetime(2026, 11, 20, tzinfo=UTC),
        content_hash="9" * 64,
    )
    out = _write(tmp_path, [hostile])
    for name in ("public.en.rss", "public.en.atom"):
        raw = (out / name).read_bytes()
        assert b"<script" not in raw and b"<img" not in raw
        tree = ET.fromstring(raw)
        assert not [element for element in tree.iter() if element.tag.endswith("script")]
        titles = [element.text for element in tree.iter() if element.tag.endswith("title")]
        parsed = feedparser.parse(raw)
        assert parsed.bozo == 0
        shown = HOSTILE.replace("\x07", "")
        title = parsed.entries[0].title_detail
        if name.endswith(".rss"):
            # RSS readers may take a title for HTML: it is HTML that shows the text.
            assert html.escape(shown, quote=False) in titles
            assert title.type == "text/html" and html.unescape(title.value) == shown
        else:
            assert shown in titles
            assert title.type == "text/plain" and title.value == shown


def test_a_rebuild_without_new_items_is_byte_identical_and_writes_nothing(
    tmp_path: Path,
) -> None:
    out = _write(tmp_path)
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in _all_feeds(out)}
    report = write_feeds(items(), directory(), RULES, _settings(tmp_path), out=out)
    assert report.written == [] and report.unchanged == len(before)
    after = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in _all_feeds(out)}
    assert after == before
    assert not list(out.rglob(".*"))  # no temporary file left behind
    newer = Item(
        id=300,
        guid="urn:new:1",
        kind="ngo_action",
        title="A new action in Bangladesh",
        published_at=datetime(2026, 11, 21, tzinfo=UTC),
        content_hash="8" * 64,
        tags={"countries": ["BD"], "organisations": ["ifla"]},
    )
    again = write_feeds([*items(), newer], directory(), RULES, _settings(tmp_path), out=out)
    assert "country/BD.en.rss" in again.written and "ngo/ifla.fr.atom" in again.written
    assert "sector/SC.en.rss" not in again.written
    assert again.summary() == (
        f"{again.files} feeds ({len(again.written)} written, {again.unchanged} unchanged)"
    )
    # An NGO gone from the directory: its feeds go too, and nothing else of ours or not.
    (out / "ngo" / "notes.txt").write_text("an operator's file")
    fewer = directory()
    fewer = type(fewer).of(
        [org for org in fewer.organisations.values() if org.slug != "ocean"],
        fewer.offices.values(),
        fewer.forums.values(),
        fewer.focal_points,
    )
    pruned = write_feeds(items(), fewer, RULES, _settings(tmp_path), out=out)
    languages = sorted(_settings(tmp_path).languages)
    assert sorted(pruned.removed) == [
        f"ngo/ocean.{language}.{fmt}" for language in languages for fmt in ("atom", "rss")
    ]
    assert not (out / "ngo" / "ocean.en.rss").exists()
    assert (out / "ngo" / "notes.txt").exists() and (out / "ngo" / "ifla.en.rss").exists()
    assert f"{len(languages) * 2} removed" in pruned.summary()


@pytest.mark.parametrize("relative", ["sector/CI.en.rss", "ngo/ifla.fr.atom", "public.fr.rss"])
def test_golden_feeds(tmp_path: Path, relative: str) -> None:
    """pytest --regenerate-golden rewrites tests/golden/feeds after a deliberate change."""
    goldens.check(GOLDEN / relative, (_write(tmp_path) / relative).read_bytes())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving the feeds folder."""
    out = tmp_path / "served"
    out.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", out
    finally:
        server.shutdown()
        server.server_close()


def test_build_feeds_from_the_database_served_over_http(
    engine: Engine, settings: Settings, served: tuple[str, Path]
) -> None:
    base, out = served
    future = Item(
        guid="urn:future:1",
        kind="event",
        title="Not yet published",
        published_at=NOW + timedelta(days=3),
        content_hash="7" * 64,
    )
    store(engine, [future])
    report = build_feeds(engine, settings, rules=load_rules(settings.routing), out=out, now=NOW)
    assert report.files == len(report.written) > 0
    parsed = feedparser.parse(f"{base}/sector/ED.fr.atom")
    assert parsed.bozo == 0 and parsed.status == 200
    assert parsed.feed.language == "fr"
    assert [entry.title for entry in parsed.entries] == [
        "Icngo conclusions",
        "Ed programme nairobi",
    ]
    public = feedparser.parse(f"{base}/public.en.rss")
    assert "Not yet published" not in {entry.title for entry in public.entries}
    assert (
        build_feeds(engine, settings, rules=load_rules(settings.routing), out=out, now=NOW).written
        == []
    )


def test_cli_feeds_build_writes_to_the_feeds_folder(tmp_path: Path, sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    store(engine)
    engine.dispose()
    args = ["--home", str(tmp_path), "--database-url", sqlite_url, "feeds", "build"]
    first = CliRunner().invoke(cli, [*args, "--now", NOW.isoformat()])
    assert first.exit_code == 0, first.output
    assert "written, 0 unchanged" in first.output
    feed = tmp_path / "var" / "feeds" / "sector" / "ED.en.atom"
    assert feedparser.parse(feed.read_bytes()).bozo == 0
    elsewhere = tmp_path / "public-feeds"
    second = CliRunner().invoke(cli, [*args, "--out", str(elsewhere), "--now", NOW.isoformat()])
    assert second.exit_code == 0, second.output
    assert (elsewhere / "public.fr.rss").is_file()


def test_every_feed_has_an_author_and_ids_that_do_not_follow_base_url(tmp_path: Path) -> None:
    out = _write(tmp_path)
    moved = tmp_path / "moved"
    elsewhere = load_settings(
        home=tmp_path,
        base_url="https://news.unesco.example",
        secret_key="test-secret-key-for-signing-links",
    )
    write_feeds(items(), directory(), RULES, elsewhere, out=moved)
    for path in _all_feeds(out):
        relative = path.relative_to(out)
        here = feedparser.parse(path.read_bytes())
        there = feedparser.parse((moved / relative).read_bytes())
        if path.suffix == ".atom":
            assert here.feed.author_detail.name == "NGO-UNESCO Partnership Diffusion"
            assert here.feed.id == there.feed.id
            assert here.feed.id.startswith("tag:diffusion.example.org,2026:feed:")
        else:
            assert here.feed.author.startswith("newsletter@diffusion.example.org")
        assert [e.id for e in here.entries] == [e.id for e in there.entries]
        assert [t.scheme for e in here.entries for t in e.tags] == [
            t.scheme for e in there.entries for t in e.tags
        ]
        # The feed links to its HTML page, which follows base_url.
        assert here.feed.link.startswith("https://diffusion.example.org/news/")


def test_entries_in_another_language_than_the_feed_say_so(tmp_path: Path) -> None:
    out = _write(tmp_path)
    french = feedparser.parse((out / "public.fr.atom").read_bytes())
    languages = {entry.title: entry.title_detail.language for entry in french.entries}
    assert languages["Action en français"] == "fr"
    assert languages["World book day"] == "en"
    raw = (out / "public.fr.atom").read_text()
    assert '<entry xml:lang="en">' in raw
    english = (out / "public.en.rss").read_text()
    assert "<dc:language>fr</dc:language>" in english


def test_an_empty_feed_says_it_is_new_and_keeps_its_first_date(tmp_path: Path) -> None:
    out = tmp_path / "feeds"
    first = datetime(2026, 11, 1, tzinfo=UTC)
    write_feeds(items(), directory(), RULES, _settings(tmp_path), out=out, now=first)
    kenya = out / "country/KE.fr.atom"
    parsed = feedparser.parse(kenya.read_bytes())
    assert parsed.entries == []
    assert parsed.feed.updated_parsed[:3] == (2026, 11, 1)
    assert parsed.feed.subtitle == "Ce fil est nouveau : ses premières entrées paraîtront ici."
    english = feedparser.parse((out / "country/KE.en.rss").read_bytes())
    assert english.feed.subtitle == "This feed is new: its first entries will appear here."
    before = kenya.read_bytes()
    later = datetime(2026, 12, 5, tzinfo=UTC)
    report = write_feeds(items(), directory(), RULES, _settings(tmp_path), out=out, now=later)
    assert report.written == []
    assert kenya.read_bytes() == before
    kenya.unlink()  # a feed whose file is gone is new again
    write_feeds(items(), directory(), RULES, _settings(tmp_path), out=out, now=later)
    assert feedparser.parse(kenya.read_bytes()).feed.updated_parsed[:3] == (2026, 12, 5)
