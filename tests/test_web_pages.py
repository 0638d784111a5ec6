"""Item pages, news pages and feed files, through the real ASGI app on a stored dataset."""

import dataclasses
import html
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from digest_dataset import store
from executable import executable
from people import enrol
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db, links, render
from diffusion.config import Settings, load_settings
from diffusion.contracts import Segment
from diffusion.deliver.feeds import build_feeds
from diffusion.editions import digest_for
from diffusion.models import Edition, Item
from diffusion.preview import build_preview
from diffusion.runtime import Runtime
from diffusion.select.digest import entry_for
from diffusion.select.periods import more_url_for
from diffusion.select.rules import load_rules
from diffusion.web import create_app

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
BASE = "https://diffusion.example.org"
HOSTILE_BODY = '<p>Fine</p><script>alert(1)</script><img src=x onerror="alert(2)" alt="x">'


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[TestClient, Settings, Engine]]:
    settings = load_settings(
        home=tmp_path,
        database_url=sqlite_url,
        secret_key="test-secret-key-for-signing-links",
        base_url=BASE,
    )
    engine = db.engine_for(settings)
    unlinked = Item(
        guid="urn:diffusion:entry:open-day",
        kind="event",
        title="Open day at the library",
        summary="Doors open.",
        body_html=HOSTILE_BODY,  # as if stored before sanitising was right: pages sanitise again
        link=None,
        published_at=datetime(2026, 11, 20, tzinfo=UTC),
        content_hash="1" * 64,
        tags={"sectors": ["ED"], "themes": ["literacy"]},
    )
    store(engine, [unlinked])
    build_feeds(
        engine, settings, rules=load_rules(settings.routing), out=settings.feeds_dir, now=NOW
    )
    with TestClient(create_app(Runtime(settings, engine=engine)), follow_redirects=False) as client:
        yield client, settings, engine
    engine.dispose()


def _id(engine: Engine, guid: str) -> int:
    with db.session_scope(engine) as session:
        found = session.exec(select(Item).where(Item.guid == guid)).one()
        assert found.id is not None
        return found.id


def test_an_item_page_shows_the_item_in_the_reader_language(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    client, _settings, engine = site
    english = client.get("/items/ifla-reading-bd")
    assert english.status_code == 200
    page = english.text
    assert "<h1>Ifla reading bd</h1>" in page
    assert (
        '<link rel="canonical" href="https://diffusion.example.org/items/ifla-reading-bd">' in page
    )
    assert "<strong>reading circles</strong>" in page  # the sanitised body
    assert 'href="https://news.example/ifla-reading-bd"' in page  # the source
    assert f'href="{BASE}/news/sector/CI?lang=en">Communication and Information</a>' in page
    assert f'href="{BASE}/news/country/BD?lang=en">Bangladesh</a>' in page
    assert f'href="{BASE}/news/ngo/ifla?lang=en">IFLA</a>' in page
    assert (
        'hreflang="fr" href="https://diffusion.example.org/items/ifla-reading-bd?lang=fr"' in page
    )
    french = client.get("/items/ifla-reading-bd?lang=fr").text
    assert '<html lang="fr"' in french and "<h1>Cercles de lecture au Bangladesh</h1>" in french
    assert "Aussi en :" in french and "Mots-clés" in french
    assert f'href="{BASE}/news/country/BD?lang=fr">Bangladesh</a>' in french
    by_id = client.get(f"/items/{_id(engine, 'ifla-reading-bd')}")
    assert by_id.status_code == 200 and "Ifla reading bd" in by_id.text


def test_an_item_page_is_sanitised_and_items_without_link_point_to_it(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    client, settings, _engine = site
    page = client.get("/items/open-day")
    assert page.status_code == 200
    assert executable(page.text) == []
    assert "<p>Fine</p>" in page.text
    for name in ("public.en.atom", "public.en.rss"):
        feed = feedparser.parse((settings.feeds_dir / name).read_bytes())
        entry = next(e for e in feed.entries if e.title == "Open day at the library")
        assert entry.link == f"{BASE}/items/open-day"


def test_non_public_items_have_no_page(site: tuple[TestClient, Settings, Engine]) -> None:
    client, _settings, engine = site
    for reference in ("icsc-private-ke", str(_id(engine, "icsc-private-ke")), "no-such", "x..y"):
        answer = client.get(f"/items/{reference}")
        assert answer.status_code == 404, reference
        assert "icsc" not in answer.text.lower()


def test_news_pages_list_a_feed_and_the_feed_links_back(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    client, settings, _engine = site
    answer = client.get("/news/sector/ED?lang=fr")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    page = answer.text
    assert '<html lang="fr"' in page
    titles = re.findall(r'<h2><a href="[^"]+">([^<]+)</a></h2>', page)
    feed = feedparser.parse((settings.feeds_dir / "sector/ED.fr.atom").read_bytes())
    assert titles == [entry.title for entry in feed.entries]
    assert (
        f'<link rel="alternate" type="application/atom+xml" href="{BASE}/feeds/sector/ED.fr.atom">'
        in page
    )
    assert feed.feed.link == f"{BASE}/news/sector/ED?lang=fr"
    # Audience names lead to their family's page; unknown keys and families do not exist.
    assert client.get("/news/member_state/BD").status_code == 200
    assert client.get("/news/public").status_code == 200
    for missing in ("/news/sector/XX", "/news/nothing", "/news/public/extra", "/news/sector"):
        assert client.get(missing).status_code == 404, missing
    # English entries on a French page say they are in English.
    public = client.get("/news/public?lang=fr").text
    assert '<article class="entry" lang="en">' in public
    assert '<article class="entry" lang="fr">' in public


def test_feed_files_are_served_from_memory_as_utf_8_with_validators(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    client, settings, _engine = site
    first = client.get("/feeds/country/BD.fr.rss")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert first.content == (settings.feeds_dir / "country/BD.fr.rss").read_bytes()
    etag = first.headers["etag"]
    again = client.get("/feeds/country/BD.fr.rss", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    path = settings.feeds_dir / "country/BD.fr.rss"
    path.write_bytes(path.read_bytes().replace(b"</rss>", b"<!-- changed --></rss>"))
    changed = client.get("/feeds/country/BD.fr.rss", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert b"<!-- changed -->" in changed.content
    for outside in ("/feeds/../diffusion.db", "/feeds/.hidden.atom", "/feeds/country/XX.en.rss"):
        assert client.get(outside).status_code == 404, outside


def test_the_email_links_entries_without_link_to_their_page_and_more_to_the_news_page(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    client, settings, engine = site
    digest = digest_for(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="public",
        key="",
        language="fr",
        period="2026-11",
        now=NOW,
    )
    assert digest.more_url == f"{BASE}/news/public?lang=fr"
    assert client.get(digest.more_url.removeprefix(BASE)).status_code == 200
    rendered = render.render_digest(digest, settings)
    assert f'href="{BASE}/items/open-day"' in rendered.html
    assert f"{BASE}/items/open-day" in rendered.text
    # A private item without a link gets no public page to point to.
    private = Item(id=99, guid="urn:private", kind="event", title="Closed", link=None,
                   public=False, published_at=NOW, content_hash="2" * 64)  # fmt: skip
    assert entry_for(private, "en").public is False
    section = dataclasses.replace(digest.sections[0], entries=(entry_for(private, "en"),))
    alone = render.with_item_pages(dataclasses.replace(digest, sections=(section,)), settings)
    assert alone.sections[0].entries[0].link is None


def test_a_preview_links_view_in_browser_to_the_archive_page_the_email_will_have(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    _client, settings, engine = site
    before = build_preview(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="sector:ED",
        language="en",
        subscriber_email=None,
        period="2026-11",
        now=NOW,
    )
    assert f"{BASE}/feeds/" not in before.html
    with db.session_scope(engine) as session:
        edition = Edition(
            segment="sector:ED|en|monthly",
            audience="sector", key="ED", language="en", cadence="monthly", period="2026-11",
            status="sent", created_at=NOW,
        )  # fmt: skip
        session.add(edition)
        session.flush()
        assert edition.id is not None
        expected = links.archive_url(settings, edition.id)
    after = build_preview(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="sector:ED",
        language="en",
        subscriber_email=None,
        period="2026-11",
        now=NOW,
    )
    assert html.escape(expected) in after.html


def _sent(engine: Engine, **fields: object) -> int:
    with db.session_scope(engine) as session:
        edition = Edition(status="sent", created_at=NOW, sent_at=NOW, **fields)  # type: ignore[arg-type]
        session.add(edition)
        session.flush()
        assert edition.id is not None
        return edition.id


def test_the_web_version_has_no_recipient_and_the_archive_navigation(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    client, settings, engine = site
    digest = digest_for(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="public",
        key="",
        language="fr",
        period="2026-11",
        now=NOW,
    )
    edition_id = _sent(engine, segment="public|fr|monthly", audience="public", language="fr",
                       period="2026-11", subject="Novembre")  # fmt: skip
    rendered = render.render_digest(
        digest, settings, web_url=links.archive_url(settings, edition_id)
    )
    with db.session_scope(engine) as session:
        stored = session.get(Edition, edition_id)
        assert stored is not None
        stored.html = rendered.html
        session.add(stored)
    # The email itself has the link and the personal footer ...
    assert "Afficher ce courriel dans votre navigateur" in rendered.html
    page = client.get(f"/archive/{edition_id}").text
    # ... its web version neither.
    assert "Afficher ce courriel dans votre navigateur" not in page
    assert "Version web" not in page
    assert "Vous recevez ce courriel" not in page and "diffusion-web-version" not in page
    assert "utilisez les liens à la fin du courriel que vous avez reçu" in page
    assert '<a href="/archive/?lang=fr">Archives</a>' in page
    assert executable(page) == []


def test_the_archive_lists_main_editions_first_with_narrowed_ones_under_them(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    client, _settings, engine = site
    narrowed = _sent(
        engine,
        segment="public|en|monthly|sectors=ED",
        audience="public",
        language="en",
        period="2026-11",
        subject="November, Education only",
    )
    main_fr = _sent(
        engine,
        segment="public|fr|monthly",
        audience="public",
        language="fr",
        period="2026-11",
        subject="Novembre",
    )
    main_en = _sent(engine, segment="public|en|monthly", audience="public", language="en",
                    period="2026-11", subject="November")  # fmt: skip
    page = client.get("/archive/?lang=fr").text
    order = [int(n) for n in re.findall(r'<a href="/archive/(\d+)"', page)]
    assert order == [main_fr, narrowed, main_en]  # the page's language first
    # The narrowed edition sits in the list under the first main one.
    pattern = rf'<li><a href="/archive/{main_fr}".*?<ul><li>(.*?)</li></ul>'
    nested = re.search(pattern, page, re.DOTALL)
    assert nested is not None and f'/archive/{narrowed}"' in nested.group(1)
    assert f'<a href="/archive/{main_en}" lang="en" hreflang="en">November</a>' in page
    assert "envoyée le" in page and "sectors: ED" in page


def test_an_entry_with_no_page_carries_its_body_in_the_email(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    _client, settings, engine = site
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
    private = Item(id=98, guid="urn:diffusion:entry:committee-notes", kind="event",
                   title="Committee notes", summary="Short.", link=None, public=False,
                   body_html="<p>Only for the <strong>committee</strong>.</p><script>x()</script>",
                   published_at=NOW, content_hash="3" * 64)  # fmt: skip
    section = dataclasses.replace(digest.sections[0], entries=(entry_for(private, "en"),))
    rendered = render.render_digest(dataclasses.replace(digest, sections=(section,)), settings)
    assert "Only for the <strong>committee</strong>." in rendered.html
    assert executable(rendered.html) == []
    assert "Only for the committee." in rendered.text
    # A public entry has its page: the email keeps to its summary and links there.
    assert "Doors open." in render.render_digest(digest, settings).html


def test_a_person_with_several_subscriptions_is_led_to_pages_that_exist(
    site: tuple[TestClient, Settings, Engine],
) -> None:
    client, settings, engine = site
    with db.session_scope(engine) as session:
        session.add(
            Item(guid="urn:diffusion:entry:ed-plan", kind="programme_update", title="ED plan",
                 summary="A plan.", link=None, published_at=datetime(2026, 11, 21, tzinfo=UTC),
                 content_hash="3" * 64, tags={"sectors": ["ED"]})
        )  # fmt: skip
        person = enrol(session, "ana@example.org", "national_commission", "BD", language="fr")
        enrol(session, "ana@example.org", "sector", "ED", person=person)
    digest = digest_for(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="",
        key="",
        language="fr",
        period="2026-11",
        now=NOW,
        subscriber_email="ana@example.org",
    )
    assert [part.audience for part in digest.segment.parts] == ["national_commission", "sector"]
    # "More online": the news page of the first subscription with a feed of its own.
    assert digest.more_url == f"{BASE}/news/country/BD?lang=fr"
    assert client.get(digest.more_url.removeprefix(BASE)).status_code == 200
    rendered = render.render_digest(digest, settings)
    pages = set(re.findall(rf'href="{re.escape(BASE)}(/items/[^"?]+)"', rendered.html))
    assert pages == {"/items/ed-plan"}  # the entry without a link, brought by the second part
    for page in pages:
        assert client.get(page).status_code == 200, page
    # A part with no feed family (the Liaison Committee) gives way to one that has one.
    rules = load_rules(settings.routing)
    mixed = Segment.of_person("en", [_Sub("liaison_committee", ""), _Sub("ngo", "ifla")])
    assert mixed.audience == "liaison_committee"
    assert more_url_for(settings, rules, mixed) == f"{BASE}/news/ngo/ifla?lang=en"


@dataclasses.dataclass
class _Sub:
    audience: str
    key: str
    cadence: str = "monthly"
    sectors: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
