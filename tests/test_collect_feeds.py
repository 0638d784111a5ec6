"""Collecting feeds from a real local HTTP server into SQLite and PostgreSQL."""

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from feedserver import FeedServer, rss
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db
from diffusion.collect import fetch, run_collection
from diffusion.config import Settings, load_settings
from diffusion.errors import UnknownRecord
from diffusion.models import Item, Source

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=6)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as feed_server:
        yield feed_server


def add_source(engine: Engine, name: str, url: str, **fields: Any) -> None:
    fields.setdefault("kind", "ngo_action")
    with db.session_scope(engine) as session:
        session.add(Source(name=name, url=url, **fields))


def items(engine: Engine) -> list[Item]:
    with db.session_scope(engine) as session:
        return list(session.exec(select(Item).order_by(col(Item.guid))).all())


def source_row(engine: Engine, name: str) -> Source:
    with db.session_scope(engine) as session:
        return session.exec(select(Source).where(Source.name == name)).one()


def entry(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "title": f"Literacy circle {number}",
        "link": f"http://ngo.example.org/news/{number}",
        "guid": f"urn:ngo:{number}",
        "description": f"<p>Report {number}</p>",
        "pubDate": datetime(2026, 11, number, 10, tzinfo=UTC),
    } | fields


def test_collects_items_then_an_unchanged_feed_costs_one_304_without_body(
    server: FeedServer, engine: Engine, settings: Settings
) -> None:
    url = server.route("/ifla.xml", rss([entry(1), entry(2)]), etag='"v1"')
    add_source(
        engine,
        "ifla",
        url,
        kind="field_office_activity",
        public=False,
        tags={"sectors": ["CI"], "organisations": ["ifla"]},
    )

    first = run_collection(engine, settings, now=NOW)
    assert [(r.name, r.status, r.new, r.updated) for r in first.results] == [("ifla", "ok", 2, 0)]
    stored = items(engine)
    assert [item.title for item in stored] == ["Literacy circle 1", "Literacy circle 2"]
    one = stored[0]
    assert one.kind == "field_office_activity" and one.public is False
    assert one.origin == "feed" and one.source_id == source_row(engine, "ifla").id
    assert one.tags == {"sectors": ["CI"], "organisations": ["ifla"]}
    assert one.published_at == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert one.collected_at == NOW
    assert one.language == "en" and one.link == "http://ngo.example.org/news/1"
    assert one.body_html == "<p>Report 1</p>" and one.summary == "Report 1"
    assert len(one.content_hash) == 64
    assert source_row(engine, "ifla").etag == '"v1"'

    second = run_collection(engine, settings, now=LATER)
    result = second.results[0]
    assert (result.status, result.not_modified, result.new, result.updated) == (
        "not_modified",
        True,
        0,
        0,
    )
    assert server.requests("/ifla.xml") == 2
    assert server.bodies_sent("/ifla.xml") == 1
    assert server.request_headers[-1][1].get("If-None-Match") == '"v1"'
    row = source_row(engine, "ifla")
    assert (row.last_status, row.last_error, row.last_fetched_at) == (304, None, LATER)
    assert len(items(engine)) == 2


def test_a_feed_that_moved_for_good_is_fetched_from_its_new_address(
    server: FeedServer, engine: Engine, settings: Settings
) -> None:
    new = server.route("/new/ifla.xml", rss([entry(1)]), etag='"v1"')
    # 301 then 308: moved for good; the source takes the new address.
    old = server.route("/old/ifla.xml", status=301, headers={"Location": server.url("/mid.xml")})
    server.route("/mid.xml", status=308, headers={"Location": new})
    add_source(engine, "ifla", old)
    # 302: moved for now; the source keeps its address.
    today = server.route("/today/ccivs.xml", rss([entry(2)]))
    add_source(engine, "ccivs", server.route("/ccivs.xml", status=302, headers={"Location": today}))

    first = {r.name: r for r in run_collection(engine, settings, now=NOW).results}

    assert {name: (r.status, r.new) for name, r in first.items()} == {
        "ccivs": ("ok", 1),
        "ifla": ("ok", 1),
    }
    assert source_row(engine, "ifla").url == new
    assert f"address changed from {old} to {new}" in (first["ifla"].warning or "")
    assert source_row(engine, "ccivs").url == server.url("/ccivs.xml")
    assert first["ccivs"].warning is None

    # Moved for good to the address another source has now: said, not taken.
    copy = server.route("/copy.xml", status=301, headers={"Location": new})
    add_source(engine, "ifla-copy", copy)
    again = run_collection(engine, settings, now=LATER, names=["ifla-copy"]).results[0]
    assert source_row(engine, "ifla-copy").url == copy
    assert "the address of source 'ifla'" in (again.warning or "")

    latest = run_collection(engine, settings, now=LATER, names=["ifla"]).results[0]
    assert latest.not_modified and server.requests("/old/ifla.xml") == 1  # not asked again
    assert server.requests("/new/ifla.xml") == 3  # ifla twice, ifla-copy once


def test_a_server_that_asks_to_wait_is_not_fetched_before_it_said(
    server: FeedServer, engine: Engine, settings: Settings
) -> None:
    busy = server.route("/busy.xml", status=503, headers={"Retry-After": "120"})
    add_source(engine, "busy", busy)
    a_week = format_datetime(NOW + timedelta(days=7), usegmt=True)
    add_source(engine, "far", server.route("/far.xml", status=429, headers={"Retry-After": a_week}))
    add_source(engine, "plain", server.route("/plain.xml", status=429))

    first = {r.name: r for r in run_collection(engine, settings, now=NOW).results}
    assert "HTTP 503" in (first["busy"].error or "")
    assert "asked to wait until 2026-11-20 09:02 UTC (Retry-After)" in (first["busy"].error or "")
    assert source_row(engine, "busy").retry_not_before == NOW + timedelta(seconds=120)
    assert source_row(engine, "far").retry_not_before == NOW + timedelta(days=1)  # at most a day
    assert source_row(engine, "plain").retry_not_before is None

    soon = {
        r.name: r for r in run_collection(engine, settings, now=NOW + timedelta(minutes=1)).results
    }
    assert (soon["busy"].status, soon["far"].status, soon["plain"].status) == (
        "waiting",
        "waiting",
        "error",
    )
    assert "wait until 2026-11-20 09:02 UTC" in (soon["busy"].warning or "")
    assert server.requests("/busy.xml") == 1 and server.requests("/plain.xml") == 2

    server.route("/busy.xml", rss([entry(1)]))
    later = run_collection(engine, settings, now=NOW + timedelta(minutes=3), names=["busy"])
    assert (later.results[0].status, later.results[0].new) == ("ok", 1)
    assert source_row(engine, "busy").retry_not_before is None


def test_last_modified_alone_is_sent_back_as_if_modified_since(
    server: FeedServer, sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    stamp = "Wed, 18 Nov 2026 08:00:00 GMT"
    add_source(engine, "lc", server.route("/lc.xml", rss([entry(3)]), last_modified=stamp))
    run_collection(engine, settings, now=NOW)
    again = run_collection(engine, settings, now=LATER)
    assert again.results[0].status == "not_modified"
    assert server.request_headers[-1][1].get("If-Modified-Since") == stamp
    assert server.bodies_sent("/lc.xml") == 1
    engine.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_one_failing_source_never_stops_the_others(
    server: FeedServer, database_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=database_url, fetch_timeout=0.5)
    engine = db.engine_for(settings)
    add_source(engine, "good", server.route("/good.xml", rss([entry(1), entry(2)])))
    add_source(engine, "missing", server.route("/missing.xml", status=404))
    add_source(engine, "broken", server.route("/broken.xml", b"oops", status=500))
    add_source(engine, "slow", server.route("/slow.xml", rss([entry(9)]), delay=2))
    add_source(engine, "garbage", server.route("/garbage.xml", b"<<<not xml at all>>> \x00\xff"))
    add_source(
        engine,
        "html",
        server.route("/page.html", b"<html><body>hi</body></html>", content_type="text/html"),
    )
    add_source(engine, "refused", f"http://127.0.0.1:{_closed_port()}/feed.xml")
    add_source(engine, "nofile", (tmp_path / "absent.xml").as_uri())

    summary = run_collection(engine, settings, now=NOW)

    by_name = {result.name: result for result in summary.results}
    assert by_name["good"].status == "ok" and by_name["good"].new == 2
    assert {r.name for r in summary.failed} == set(by_name) - {"good"}
    assert "404" in (by_name["missing"].error or "")
    assert "500" in (by_name["broken"].error or "")
    assert "0.5 s" in (by_name["slow"].error or "")
    assert "not an RSS or Atom feed" in (by_name["garbage"].error or "")
    assert "not an RSS or Atom feed" in (by_name["html"].error or "")
    assert "ConnectError" in (by_name["refused"].error or "")
    assert "absent.xml" in (by_name["nofile"].error or "")
    for name in set(by_name) - {"good"}:
        row = source_row(engine, name)
        assert row.last_error and row.last_fetched_at == NOW, name
    assert source_row(engine, "missing").last_status == 404
    assert source_row(engine, "refused").last_status is None
    assert source_row(engine, "good").last_error is None
    assert [item.title for item in items(engine)] == ["Literacy circle 1", "Literacy circle 2"]
    engine.dispose()


@pytest.mark.parametrize(
    ("encoding", "declared"),
    [("iso-8859-1", "application/rss+xml; charset=iso-8859-1"), ("utf-16", "application/xml")],
)
def test_feeds_in_latin_1_and_utf_16_are_decoded(
    server: FeedServer, sqlite_url: str, tmp_path: Path, encoding: str, declared: str
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    body = rss(
        [
            entry(
                1, title="Éducation à Medellín", description="<p>Réseau des villes apprenantes</p>"
            )
        ],
        encoding=encoding,
    )
    add_source(engine, "enc", server.route("/enc.xml", body, content_type=declared))
    summary = run_collection(engine, settings, now=NOW)
    assert summary.results[0].status == "ok", summary.results[0]
    (item,) = items(engine)
    assert item.title == "Éducation à Medellín"
    assert item.body_html == "<p>Réseau des villes apprenantes</p>"
    engine.dispose()


def test_duplicates_within_a_feed_and_across_runs_update_in_place(
    server: FeedServer, engine: Engine, settings: Settings
) -> None:
    first = rss([entry(1), entry(1, title="Duplicate of 1 in the same feed"), entry(2)])
    url = server.route("/dup.xml", first, etag='"a"')
    add_source(engine, "dup", url)
    summary = run_collection(engine, settings, now=NOW)
    assert (summary.new, summary.updated) == (2, 0)

    changed = rss([entry(1, title="Literacy circle 1, revised"), entry(2), entry(3)])
    server.route("/dup.xml", changed, etag='"b"')
    summary = run_collection(engine, settings, now=LATER)
    assert (summary.new, summary.updated) == (1, 1)
    stored = items(engine)
    assert [item.guid for item in stored] == ["urn:ngo:1", "urn:ngo:2", "urn:ngo:3"]
    assert stored[0].title == "Literacy circle 1, revised"
    assert stored[0].collected_at == NOW  # first sighting is kept
    assert source_row(engine, "dup").last_new_items == 1


def test_entries_without_guid_are_matched_by_link_then_by_content(
    server: FeedServer, sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    no_guid = {key: value for key, value in entry(1).items() if key != "guid"}
    bare = {"title": "No link nor guid", "description": "<p>Plain</p>"}
    add_source(engine, "loose", server.route("/loose.xml", rss([no_guid, bare])))
    run_collection(engine, settings, now=NOW)
    # No validators: the whole feed comes again, with a changed title on the linked entry.
    server.route("/loose.xml", rss([no_guid | {"title": "Renamed"}, bare]))
    summary = run_collection(engine, settings, now=LATER)
    assert (summary.new, summary.updated) == (0, 1)
    stored = items(engine)
    assert len(stored) == 2
    linked = next(item for item in stored if item.link)
    assert (linked.guid, linked.title) == ("http://ngo.example.org/news/1", "Renamed")
    undated = next(item for item in stored if item.link is None)
    assert undated.guid == f"sha256:{undated.content_hash}"
    assert undated.published_at == NOW  # undated: first seen, and kept on re-collection
    engine.dispose()


def test_guids_that_are_not_urls_are_scoped_to_their_feed(
    server: FeedServer, sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    a = server.route("/a.xml", rss([entry(1, guid="1", link="http://a.example.org/1")]))
    b = server.route("/b.xml", rss([entry(1, guid="1", link="http://b.example.org/1")]))
    add_source(engine, "a", a)
    add_source(engine, "b", b)
    assert run_collection(engine, settings, now=NOW).new == 2
    assert sorted(item.guid for item in items(engine)) == [f"{a}#1", f"{b}#1"]
    engine.dispose()


def test_injected_scripts_come_out_inert_and_relative_links_absolute(
    server: FeedServer, sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    hostile = entry(
        1,
        title='<script>alert("t")</script>Flood\r\nBcc: victim@example.org '
        "<b onmouseover=x()>relief</b>",
        link="/news/flood",
        description='<p style="display:none">hidden</p><p onclick="steal()">Text '
        '<a href="javascript:alert(1)">click</a> <a href="../report.pdf">report</a>'
        '<img src="img/map.png" onerror="alert(2)"></p><script>alert(3)</script>'
        '<iframe src="http://evil.example.org/"></iframe>',
    )
    sneaky = entry(2, link="javascript:alert(document.cookie)", guid="urn:sneaky")
    add_source(engine, "hostile", server.route("/ngo/feed.xml", rss([hostile, sneaky])))
    run_collection(engine, settings, now=NOW)
    item, other = items(engine)
    assert other.guid == "urn:sneaky" and other.link is None
    assert item.title == "Flood Bcc: victim@example.org relief"
    assert "\n" not in item.summary and "<" not in item.summary
    body = item.body_html.lower()
    for bad in ("<script", "alert(3)", "onclick", "onerror", "javascript:", "<iframe", "style="):
        assert bad not in body, bad
    assert item.link == server.url("/news/flood")
    assert 'href="http://127.0.0.1' in item.body_html
    assert f'href="{server.url("/report.pdf")}"' in item.body_html
    assert f'src="{server.url("/news/img/map.png")}"' in item.body_html
    engine.dispose()


def test_dates_languages_and_categories(
    server: FeedServer, sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    paris = timezone(timedelta(hours=1))
    feed = rss(
        [
            entry(
                1,
                pubDate=datetime(2026, 11, 3, 12, tzinfo=paris),
                categories=["ED", "KE", "Literacy"],
            ),
            {key: value for key, value in entry(2).items() if key != "pubDate"},
        ],
        language="fr-FR",
    )
    add_source(engine, "fr", server.route("/fr.xml", feed), tags={"countries": ["FR"]})
    add_source(
        engine, "nolang", server.route("/nolang.xml", rss([entry(5)], language=None)), language="es"
    )
    add_source(engine, "default", server.route("/default.xml", rss([entry(6)], language=None)))
    run_collection(engine, settings, now=NOW)
    by_guid = {item.guid: item for item in items(engine)}
    dated, undated = by_guid["urn:ngo:1"], by_guid["urn:ngo:2"]
    assert dated.published_at == datetime(2026, 11, 3, 11, tzinfo=UTC)
    assert undated.published_at == NOW
    assert dated.language == "fr"
    assert dated.tags == {"sectors": ["ED"], "countries": ["FR", "KE"], "themes": ["Literacy"]}
    assert by_guid["urn:ngo:5"].language == "es"
    assert by_guid["urn:ngo:6"].language == settings.default_language
    engine.dispose()


def test_atom_feed_with_xml_lang(server: FeedServer, sqlite_url: str, tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr">
  <title>Bureau de Dakar</title><id>urn:dakar</id><updated>2026-11-02T10:00:00Z</updated>
  <entry><title>Atelier</title><id>urn:dakar:1</id><updated>2026-11-02T10:00:00+02:00</updated>
    <link href="https://dakar.example.org/atelier"/>
    <content type="html">
      &lt;p&gt;Un &lt;a href="programme"&gt;programme&lt;/a&gt;&lt;/p&gt;</content>
    <summary>Un atelier</summary><category term="SHS"/></entry>
</feed>"""
    add_source(
        engine, "dakar", server.route("/dakar.atom", atom, content_type="application/atom+xml")
    )
    run_collection(engine, settings, now=NOW)
    (item,) = items(engine)
    assert (item.title, item.summary, item.language) == ("Atelier", "Un atelier", "fr")
    assert item.published_at == datetime(2026, 11, 2, 8, tzinfo=UTC)
    assert item.body_html == (
        '<p>Un <a href="https://dakar.example.org/programme" rel="noopener noreferrer">'
        "programme</a></p>"
    )
    assert item.tags == {"sectors": ["SHS"]}
    engine.dispose()


def test_file_sources_use_the_modification_time_as_last_modified(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    path = tmp_path / "demo.xml"
    path.write_bytes(rss([entry(1)]))
    add_source(engine, "demo", path.as_uri())
    assert run_collection(engine, settings, now=NOW).results[0].new == 1
    assert run_collection(engine, settings, now=LATER).results[0].status == "not_modified"
    path.write_bytes(rss([entry(1), entry(2)]))
    os.utime(path, (1_900_000_000, 1_900_000_000))
    result = run_collection(engine, settings, now=LATER).results[0]
    assert (result.status, result.new) == ("ok", 1)
    engine.dispose()


def test_only_the_named_sources_are_collected_and_unknown_names_refused(
    server: FeedServer, sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    add_source(engine, "one", server.route("/1.xml", rss([entry(1)])))
    add_source(engine, "two", server.route("/2.xml", rss([entry(2)])))
    seen: list[str] = []
    summary = run_collection(engine, settings, now=NOW, names=["two"], progress=seen.append)
    assert [r.name for r in summary.results] == ["two"] and seen == ["two"]
    assert server.requests("/1.xml") == 0
    with pytest.raises(UnknownRecord, match="nope"):
        run_collection(engine, settings, now=NOW, names=["two", "nope"])
    engine.dispose()


def test_parsing_in_worker_processes_gives_the_same_items(
    server: FeedServer, sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    for number in range(1, 5):
        add_source(engine, f"s{number}", server.route(f"/{number}.xml", rss([entry(number)])))
    add_source(engine, "garbage", server.route("/garbage.xml", b"<html>no feed</html>"))
    summary = run_collection(engine, settings, now=NOW, workers=2)
    assert [(r.name, r.status, r.new) for r in summary.results] == [
        ("garbage", "error", 0),
        ("s1", "ok", 1),
        ("s2", "ok", 1),
        ("s3", "ok", 1),
        ("s4", "ok", 1),
    ]
    assert "not an RSS or Atom feed" in (summary.results[0].error or "")
    assert [item.title for item in items(engine)] == [f"Literacy circle {n}" for n in range(1, 5)]
    engine.dispose()


def test_a_source_with_an_unknown_kind_is_reported_without_a_request(
    server: FeedServer, sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    add_source(engine, "odd", server.route("/odd.xml", rss([entry(1)])), kind="newsletter")
    add_source(engine, "fine", server.route("/fine.xml", rss([entry(2)])))
    summary = run_collection(engine, settings, now=NOW)
    odd = next(result for result in summary.results if result.name == "odd")
    assert odd.status == "error" and "kind 'newsletter'" in (odd.error or "")
    assert server.requests("/odd.xml") == 0
    assert source_row(engine, "odd").last_error == odd.error
    assert [item.guid for item in items(engine)] == ["urn:ngo:2"]
    engine.dispose()


def test_an_oversized_feed_is_not_read(
    server: FeedServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "MAX_FEED_BYTES", 2_000)
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    add_source(engine, "huge", server.route("/huge.xml", rss([entry(n) for n in range(1, 29)])))
    add_source(engine, "small", server.route("/small.xml", rss([entry(1)])))
    summary = run_collection(engine, settings, now=NOW)
    assert [(r.name, r.status) for r in summary.results] == [("huge", "error"), ("small", "ok")]
    assert "larger than" in (summary.results[0].error or "")
    engine.dispose()


def test_wrongly_declared_encodings_are_recovered_or_reported(
    server: FeedServer, sqlite_url: str, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    latin = rss([entry(1, title="Éducation à Medellín")], encoding="iso-8859-1")
    add_source(
        engine, "mislabelled", server.route("/latin.xml", latin.replace(b"iso-8859-1", b"utf-8"))
    )
    # UTF-16 without its byte-order mark, served as UTF-8: no parser can make sense of it.
    utf16 = rss([entry(2)], encoding="utf-16")[2:]
    add_source(engine, "undecodable", server.route("/utf16.xml", utf16))
    summary = run_collection(engine, settings, now=NOW)
    mislabelled, undecodable = summary.results
    assert mislabelled.status == "ok" and "declared as utf-8" in (mislabelled.warning or "")
    assert undecodable.status == "error" and undecodable.error
    assert [item.title for item in items(engine)] == ["Éducation à Medellín"]
    engine.dispose()
