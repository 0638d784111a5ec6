"""Storing items: matched by guid, then link, then content hash; updated in place, never doubled."""

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db
from diffusion.collect.feeds import content_hash
from diffusion.collect.items import count_items, find_items, upsert_items
from diffusion.models import Item, Source

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def item(guid: str, title: str, link: str | None = None, source_id: int | None = None) -> Item:
    return Item(
        kind="ngo_action",
        guid=guid,
        link=link,
        title=title,
        published_at=NOW - timedelta(days=1),
        collected_at=NOW,
        content_hash=content_hash(title, "", "", link),
        source_id=source_id,
        origin="feed" if source_id else "editorial",
    )


def upsert(engine: Engine, *items: Item, now: datetime = NOW) -> tuple[int, int]:
    with db.session_scope(engine) as session:
        return upsert_items(session, list(items), now=now)


def stored(engine: Engine) -> list[tuple[str, str, str | None]]:
    with db.session_scope(engine) as session:
        rows = session.exec(select(Item).order_by(col(Item.id))).all()
        return [(row.guid, row.title, row.link) for row in rows]


def test_guid_first_and_a_guid_match_is_never_taken_by_a_link_match(engine: Engine) -> None:
    assert upsert(engine, item("g1", "One", "http://x.example.org/shared")) == (1, 0)
    # g2 comes first and shares g1's link; g1 must still update its own row, g2 is new.
    result = upsert(
        engine,
        item("g2", "Two", "http://x.example.org/shared"),
        item("g1", "One, revised", "http://x.example.org/shared"),
    )
    assert result == (1, 1)
    assert stored(engine) == [
        ("g1", "One, revised", "http://x.example.org/shared"),
        ("g2", "Two", "http://x.example.org/shared"),
    ]


def test_a_changed_guid_with_the_same_link_or_content_updates_in_place(engine: Engine) -> None:
    with db.session_scope(engine) as session:
        source = Source(name="s", url="http://s.example.org/rss", kind="ngo_action")
        session.add(source)
        session.flush()
        source_id = source.id
    upsert(engine, item("build-1", "Linked", "http://s.example.org/a", source_id))
    upsert(engine, item("build-1b", "Unlinked", None, source_id))
    # The site regenerated its guids: the link, then the content, still identify the entries.
    later = NOW + timedelta(hours=1)
    assert upsert(
        engine,
        item("build-2", "Linked, edited", "http://s.example.org/a", source_id),
        item("build-2b", "Unlinked", None, source_id),
        now=later,
    ) == (0, 1)
    assert stored(engine) == [
        ("build-1", "Linked, edited", "http://s.example.org/a"),
        ("build-1b", "Unlinked", None),
    ]


def test_links_and_content_are_matched_within_the_same_source_only(engine: Engine) -> None:
    upsert(engine, item("e1", "Same", "http://x.example.org/page"))  # editorial
    with db.session_scope(engine) as session:
        source = Source(name="s", url="http://s.example.org/rss", kind="ngo_action")
        session.add(source)
        session.flush()
        source_id = source.id
    assert upsert(engine, item("f1", "Same", "http://x.example.org/page", source_id)) == (1, 0)
    assert len(stored(engine)) == 2


def test_an_unchanged_item_counts_neither_created_nor_updated(engine: Engine) -> None:
    upsert(engine, item("g1", "One"))
    assert upsert(engine, item("g1", "One"), item("g1", "One, duplicate in batch")) == (0, 0)
    assert stored(engine) == [("g1", "One", None)]


def test_find_and_count_items_filter_tags_in_sql(engine: Engine) -> None:
    rows: list[tuple[Item, dict[str, list[str]]]] = [
        (item("a", "Education in Kenya"), {"sectors": ["ED", "SC"], "countries": ["KE"]}),
        (item("b", "Science in Nepal"), {"sectors": ["SC"], "countries": ["NP"], "themes": ["ED"]}),
        (item("c", "Untagged"), {}),
    ]
    with db.session_scope(engine) as session:
        for number, (row, tags) in enumerate(rows):
            row.tags = tags
            row.published_at = NOW - timedelta(days=number)
        upsert_items(session, [row for row, _ in rows], now=NOW)
    with db.session_scope(engine) as session:
        assert [i.guid for i in find_items(session, sector="ED")] == ["a"]
        assert [i.guid for i in find_items(session, sector="sc")] == ["a", "b"]
        assert [i.guid for i in find_items(session, country="NP")] == ["b"]
        assert [i.guid for i in find_items(session, limit=2)] == ["a", "b"]
        assert [i.guid for i in find_items(session, since=NOW - timedelta(hours=36))] == ["a", "b"]
        assert count_items(session, sector="SC", country="KE") == 1
        assert count_items(session, kind="event") == 0
        assert count_items(session) == 3
