"""Leases that hold: renewed while sending, never written over by a worker that lost them."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.config import Settings, load_settings
from diffusion.deliver import outbox, send_pending
from diffusion.deliver.enqueue import enqueue
from diffusion.deliver.rows import Result
from diffusion.models import OutboxMessage
from tests.conftest import _postgres_database
from tests.people import enrol
from tests.smtpserver import RecordingServer, make_edition, make_subscribers, smtp_server

__all__ = ["smtp_server"]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    for url in _postgres_database():
        db.upgrade(url)
        yield url


def test_two_workers_with_a_relay_slower_than_the_lease_send_nobody_twice(
    postgres_url: str, smtp_server: RecordingServer, tmp_path: object
) -> None:
    engine = db.make_engine(postgres_url)
    with db.session_scope(engine) as session:
        make_edition(session)
        make_subscribers(session, 12)
        # Deferred at every try: the worker that gets it keeps looking for due and stale
        # rows (reclaiming) while the other is still on its first batch.
        enrol(session, email="defer@example.org", audience="liaison_committee")
    smtp_server.rcpt_delay = lambda address: 0.4  # 8 rows claimed at once take 3.2 s
    smtp_server.rcpt_reply = lambda a: "451 4.7.1 greylisted" if a.startswith("defer") else None
    settings = load_settings(
        home=tmp_path,
        database_url=postgres_url,
        secret_key="test-secret-key-for-signing-links",
        smtp_url=smtp_server.url,
        smtp_connections=1,
        send_lease_seconds=1.0,  # far shorter than a batch's sending
        retry_base_seconds=0.2,
        max_attempts=5,
    )

    send_pending(engine, settings, now=datetime.now(UTC), workers=2, retry_within=10)

    assert smtp_server.deliveries() == {f"reader{n}@example.org": 1 for n in range(12)}
    with db.session_scope(engine) as session:
        states = {row.state for row in session.exec(select(OutboxMessage))}
    assert states == {"sent", "failed_permanent"}
    engine.dispose()


def test_a_worker_that_lost_its_lease_writes_nothing_over_the_new_holder(
    engine: Engine, settings: Settings
) -> None:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        people = make_subscribers(session, 2)
        enqueue(session, edition, people, settings, now=NOW)
    with db.session_scope(engine) as session:
        first = outbox.claim(session, "a:1:x", edition_ids=[edition.id], now=NOW, limit=2)
    later = NOW + timedelta(minutes=11)
    with db.session_scope(engine) as session:
        assert outbox.reclaim(session, now=later) == 2  # a's lease ran out
        second = outbox.claim(session, "b:2:y", edition_ids=[edition.id], now=later, limit=2)
    assert [c.outbox_id for c in first] == [c.outbox_id for c in second]

    late = [
        Result(first[0].outbox_id, 0, "permanent", "550 too late"),
        Result(first[1].outbox_id, 0, "relay", "the relay refused the sender"),
    ]
    with db.session_scope(engine) as session:
        assert outbox.renew(session, "a:1:x", [c.outbox_id for c in first], now=later) == set()
        outbox.record(session, late, settings, now=later, worker="a:1:x")
        outbox.release(session, [c.outbox_id for c in first], now=later, worker="a:1:x")
    with db.session_scope(engine) as session:
        rows = session.exec(select(OutboxMessage)).all()
        assert {(row.state, row.claimed_by, row.attempts) for row in rows} == {
            ("sending", "b:2:y", 0)
        }
    with db.session_scope(engine) as session:
        outbox.record(
            session, [Result(second[0].outbox_id, 0, "sent", "250 ok")], settings,
            now=later, worker="b:2:y",
        )  # fmt: skip
        assert outbox.renew(session, "b:2:y", [c.outbox_id for c in second], now=later) == {
            second[1].outbox_id
        }
