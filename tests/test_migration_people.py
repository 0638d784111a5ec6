"""Migration 0005: a database of the previous release, with subscribers and outbox rows, becomes
people with subscriptions on SQLite and PostgreSQL, and nothing is lost."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import _postgres_database
from sqlmodel import Session, select

from diffusion import db
from diffusion.deliver.enqueue import segment_subscribers
from diffusion.models import ConsentEvent, Edition, OutboxMessage, Person, Subscription

T0 = datetime(2026, 9, 1, 8, 0)  # naive UTC, as the old release stored timestamps
T1 = datetime(2026, 10, 2, 9, 30)

# id, email, name, language, audience, key, sectors, themes, cadence, status, soft_bounces
OLD_SUBSCRIBERS = [
    (1, "ana@ifla.example.org", "Ana", "fr", "ngo", "ifla", ["ED"], [], "monthly", "active", 0),
    (2, "bo@example.org", "Bo", "en", "public", "", [], ["inclusion"], "weekly", "pending", 0),
    (4, "cy@example.org", "", "en", "sector", "ED", [], [], "monthly", "unsubscribed", 0),
    (7, "di@example.org", "Di", "en", "national_commission", "BD", [], [], "monthly", "bounced", 3),
    (9, "ed@example.org", "Ed", "en", "liaison_committee", "", [], [], "monthly", "active", 1),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at revision 0004 (the current release)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'old.db'}"
        db.upgrade(url, "0004")
        yield url
    else:
        for url in _postgres_database():
            db.upgrade(url, "0004")
            yield url


def _fill_old_release(url: str) -> None:
    engine = db.make_engine(url)
    with engine.begin() as connection:
        for row in OLD_SUBSCRIBERS:
            sid, email, name, language, audience, key, sectors, themes, cadence, status, soft = row
            connection.execute(
                sa.text(
                    "INSERT INTO subscribers (id, email, name, language, audience, key, sectors, "
                    "themes, regions, cadence, status, soft_bounces, consent_at, "
                    "status_changed_at, created_at) VALUES (:id, :email, :name, :language, "
                    ":audience, :key, :sectors, :themes, '[]', :cadence, :status, :soft, "
                    ":consent, :changed, :created)"
                ),
                {
                    "id": sid,
                    "email": email,
                    "name": name,
                    "language": language,
                    "audience": audience,
                    "key": key,
                    "sectors": json.dumps(sectors),
                    "themes": json.dumps(themes),
                    "cadence": cadence,
                    "status": status,
                    "soft": soft,
                    "consent": None if status == "pending" else T0,
                    "changed": T1,
                    "created": T0,
                },
            )
        connection.execute(
            sa.text(
                "INSERT INTO editions (id, segment, audience, key, language, cadence, period, "
                "subject, html, text, item_count, status, created_at) VALUES (1, "
                "'liaison_committee|en|monthly', 'liaison_committee', '', 'en', 'monthly', "
                "'2026-10', 'October', '<p>x</p>', 'x', 1, 'sending', :t)"
            ),
            {"t": T1},
        )
        for outbox_id, subscriber_id, state in ((1, 9, "sent"), (2, 1, "queued")):
            connection.execute(
                sa.text(
                    "INSERT INTO outbox (id, edition_id, subscriber_id, state, attempts, "
                    "message_id, updated_at) VALUES (:id, 1, :sub, :state, :attempts, :mid, :t)"
                ),
                {
                    "id": outbox_id,
                    "sub": subscriber_id,
                    "state": state,
                    "attempts": 1 if state == "sent" else 0,
                    "mid": f"<{outbox_id}@example.org>",
                    "t": T1,
                },
            )
    engine.dispose()


def test_every_subscriber_becomes_a_person_with_one_subscription(old_database: str) -> None:
    _fill_old_release(old_database)
    db.upgrade(old_database)
    engine = db.make_engine(old_database)
    try:
        with Session(engine) as session:
            people = {p.id: p for p in session.exec(select(Person)).all()}
            held = {s.person_id: s for s in session.exec(select(Subscription)).all()}
            events = session.exec(select(ConsentEvent)).all()
            rows = {r.id: r for r in session.exec(select(OutboxMessage)).all()}
        assert sorted(people) == [row[0] for row in OLD_SUBSCRIBERS]
        assert sorted(held) == sorted(people)  # exactly one subscription each
        for (
            sid,
            email,
            name,
            language,
            audience,
            key,
            sectors,
            themes,
            cadence,
            status,
            soft,
        ) in OLD_SUBSCRIBERS:
            person, subscription = people[sid], held[sid]
            assert (person.email, person.name, person.language) == (email, name, language)
            assert (person.status, person.soft_bounces) == (status, soft)
            assert person.status_changed_at == T1.replace(tzinfo=UTC)
            assert person.created_at == T0.replace(tzinfo=UTC)
            assert (subscription.audience, subscription.key, subscription.cadence) == (
                audience,
                key,
                cadence,
            )
            assert (subscription.sectors, subscription.themes) == (sectors, themes)
            expected = {"pending": "pending", "unsubscribed": "left"}.get(status, "active")
            assert subscription.status == expected
        # Each conversion is written down, with the status it had.
        assert sorted((e.person_id, e.to_status) for e in events) == sorted(
            (row[0], row[9]) for row in OLD_SUBSCRIBERS
        )
        # The outbox rows are kept as they were, naming the same people.
        assert {i: (r.subscriber_id, r.state, r.message_id) for i, r in rows.items()} == {
            1: (9, "sent", "<1@example.org>"),
            2: (1, "queued", "<2@example.org>"),
        }
        with db.session_scope(engine) as session:
            edition = session.get(Edition, 1)
            assert edition is not None
            # The edition's segment still finds its reader: the active Liaison Committee member.
            assert [m.id for m in segment_subscribers(session, edition)] == [9]
            # A new person gets a new id, never one given before.
            newcomer = Person(email="new@example.org", status="active")
            session.add(newcomer)
            session.flush()
            assert newcomer.id is not None and newcomer.id > 9
    finally:
        engine.dispose()


def test_the_outbox_points_at_people_after_the_upgrade(old_database: str) -> None:
    _fill_old_release(old_database)
    db.upgrade(old_database)
    engine = db.make_engine(old_database)
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO outbox (edition_id, subscriber_id, state, attempts, updated_at) "
                    "VALUES (1, 999, 'queued', 0, :t)"
                ),
                {"t": T1},
            )
    finally:
        engine.dispose()


def test_downgrade_gives_back_one_subscriber_per_person(old_database: str) -> None:
    _fill_old_release(old_database)
    db.upgrade(old_database)
    from alembic import command

    command.downgrade(db.alembic_config(old_database), "0004")
    engine = db.make_engine(old_database)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sa.text("SELECT id, email, status FROM subscribers ORDER BY id")
            ).all()
            sent = connection.execute(sa.text("SELECT COUNT(*) FROM outbox")).scalar()
        assert [tuple(row) for row in found] == [(r[0], r[1], r[9]) for r in OLD_SUBSCRIBERS]
        assert sent == 2
    finally:
        engine.dispose()
