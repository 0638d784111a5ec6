"""The outbox and the send job against a real SMTP server with faults, on SQLite and PostgreSQL."""

import json
import mailbox
import random
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db, subscriptions
from diffusion.cli import cli
from diffusion.config import Settings
from diffusion.contracts import Segment
from diffusion.deliver import outbox, send_pending
from diffusion.deliver.enqueue import enqueue, enqueue_segment, segment_subscribers
from diffusion.errors import InvalidInput
from diffusion.models import Edition, OutboxMessage, Person
from tests.people import enrol
from tests.smtpserver import RecordingServer, make_edition, make_subscribers, smtp_server

__all__ = ["smtp_server"]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def smtp(settings: Settings, server: RecordingServer, **changes: Any) -> Settings:
    return settings.replace(smtp_url=server.url, **changes)


def seed(engine: Engine, count: int, **edition: Any) -> int:
    with db.session_scope(engine) as session:
        found = make_edition(session, **edition)
        make_subscribers(session, count)
        return int(found.id)


def states(engine: Engine, edition_id: int | None = None) -> dict[str, OutboxMessage]:
    query = select(OutboxMessage, Person.email).join(Person)
    if edition_id is not None:
        query = query.where(OutboxMessage.edition_id == edition_id)
    with db.session_scope(engine) as session:
        return {email: row for row, email in session.exec(query).all()}


def test_enqueue_adds_the_segment_once(engine: Engine, settings: Settings) -> None:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        make_subscribers(session, 5)
        make_subscribers(session, 2, audience="ngo", prefix="ngo")
        lc = "liaison_committee"
        enrol(session, email="fr@example.org", audience=lc, language="fr")
        enrol(session, email="gone@example.org", audience=lc, status="unsubscribed")
        enrol(session, email="ed@example.org", audience=lc, sectors=["ED"])
        session.flush()
        people = segment_subscribers(session, edition)
        added = enqueue(session, edition, people, settings, now=NOW)
        people = segment_subscribers(session, edition)
        again = enqueue(session, edition, people, settings, now=NOW)
    assert (added, again) == (5, 0)
    assert sorted(states(engine)) == [f"reader{n}@example.org" for n in range(5)]

    # A narrowed segment takes only its own: the reader of Education, and of it alone.
    with db.session_scope(engine) as session:
        lc = "liaison_committee"
        enrol(session, email="ed-sc@example.org", audience=lc, sectors=["SC", "ED"])
        enrol(session, email="ed2@example.org", audience=lc, sectors=["ED"], themes=[])
        narrowed = make_edition(session, period="2026-12")
        narrowed.segment = Segment(lc, sectors=("ED",)).id
        session.flush()
        members = segment_subscribers(session, narrowed)
        assert enqueue(session, narrowed, members, settings, now=NOW) == 2
    assert sorted(states(engine, narrowed.id)) == ["ed2@example.org", "ed@example.org"]


def test_people_who_bounced_or_complained_are_not_queued_though_their_subscriptions_stay(
    engine: Engine, settings: Settings
) -> None:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        people = make_subscribers(session, 4)
        origin = subscriptions.Origin.bounce("550 5.1.1 no such mailbox")
        assert subscriptions.mark_bounced(session, people[1], origin=origin, now=NOW)
        assert subscriptions.mark_complained(session, people[2], origin=origin, now=NOW)
        session.flush()
        held = {s.status for p in people[1:3] for s in subscriptions.subscriptions_of(session, p)}
        assert held == {"active"}  # what they asked for is kept, should they opt in again
        assert enqueue_segment(session, edition, settings, now=NOW) == 2
    assert sorted(states(engine)) == ["reader0@example.org", "reader3@example.org"]


def test_enqueueing_a_segment_in_one_statement_takes_the_same_people_with_their_ids(
    engine: Engine, settings: Settings
) -> None:
    from diffusion.deliver.message import message_ids

    lc = "liaison_committee"
    with db.session_scope(engine) as session:
        make_subscribers(session, 3)
        enrol(session, email="fr@example.org", audience=lc, language="fr")
        enrol(session, email="gone@example.org", audience=lc, status="unsubscribed")
        enrol(session, email="ed@example.org", audience=lc, sectors=["ED"])
        enrol(session, email="ed-sc@example.org", audience=lc, sectors=["SC", "ED"])
        whole = make_edition(session)
        narrowed = make_edition(session, period="2026-12")
        narrowed.segment = Segment(lc, sectors=("ED",)).id
        session.flush()
        assert enqueue_segment(session, whole, settings, now=NOW) == 3
        assert enqueue_segment(session, whole, settings, now=NOW) == 0
        assert enqueue_segment(session, narrowed, settings, now=NOW) == 1
        ids = message_ids(whole, settings)
    rows = states(engine, whole.id)
    assert sorted(rows) == [f"reader{n}@example.org" for n in range(3)]
    assert {row.message_id for row in rows.values()} == {
        ids(row.subscriber_id) for row in rows.values()
    }
    assert list(states(engine, narrowed.id)) == ["ed@example.org"]


def test_each_recipient_ends_in_the_state_its_server_reply_calls_for(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    edition_id = seed(engine, 4)
    with db.session_scope(engine) as session:
        for name in ("defer", "refuse", "drop", "slow"):
            enrol(session, email=f"{name}@example.org", audience="liaison_committee")
    smtp_server.rcpt_reply = lambda a: {
        "defer@example.org": "451 4.7.1 greylisted, try again",
        "refuse@example.org": "550 5.1.1 no such mailbox",
    }.get(a)
    smtp_server.data_fault = lambda env: "drop" if "drop@example.org" in env.rcpt_tos else None
    smtp_server.rcpt_delay = lambda a: 3.0 if a == "slow@example.org" else 0.0
    config = smtp(settings, smtp_server, smtp_timeout=0.5, smtp_connections=2)

    summary = send_pending(engine, config, now=NOW)

    rows = states(engine)
    for n in range(4):
        assert rows[f"reader{n}@example.org"].state == "sent"
        assert rows[f"reader{n}@example.org"].message_id
    assert rows["refuse@example.org"].state == "failed_permanent"
    assert "550 5.1.1 no such mailbox" in (rows["refuse@example.org"].last_error or "")
    row = rows["defer@example.org"]
    assert (row.state, row.attempts) == ("failed_temporary", 1)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= NOW + timedelta(seconds=config.send.retry_base_seconds)
    assert "451" in (rows["defer@example.org"].last_error or "")
    # A dropped connection and a timeout are the relay's faults: queued again as they were,
    # until the breaker stops the send.
    for name, reason in (("drop", "dropped the connection"), ("slow", "did not answer")):
        row = rows[f"{name}@example.org"]
        assert (row.state, row.attempts, row.next_attempt_at) == ("queued", 0, None), name
        assert reason in (row.last_error or ""), name
    assert summary.halted and "the relay" in summary.halted
    assert (summary.sent, summary.failed, summary.deferred) == (4, 1, 1)
    assert smtp_server.deliveries() == {f"reader{n}@example.org": 1 for n in range(4)}
    with db.session_scope(engine) as session:
        assert session.get(Edition, edition_id).status == "sending"  # type: ignore[union-attr]

    # The faults clear; deferred rows go out when retried, and the edition is finished.
    smtp_server.rcpt_reply = smtp_server.data_fault = smtp_server.rcpt_delay = None
    with db.session_scope(engine) as session:
        assert outbox.retry_now(session, now=NOW) == 1
    summary = send_pending(engine, config, now=NOW + timedelta(minutes=1))
    assert summary.sent == 3 and summary.editions_sent == [edition_id]
    expected = {f"reader{n}@example.org": 1 for n in range(4)}
    expected.update({"defer@example.org": 1, "drop@example.org": 1, "slow@example.org": 1})
    assert smtp_server.deliveries() == expected
    with db.session_scope(engine) as session:
        finished = session.get(Edition, edition_id)
        assert finished is not None and finished.status == "sent" and finished.sent_at


def test_backoff_doubles_and_gives_up_after_max_attempts(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    seed(engine, 1)
    smtp_server.rcpt_reply = lambda a: "452 4.2.2 mailbox full"
    config = smtp(settings, smtp_server, retry_base_seconds=0.05, max_attempts=3)
    summary = send_pending(engine, config, now=NOW, retry_within=5)
    row = states(engine)["reader0@example.org"]
    assert (row.state, row.attempts) == ("failed_permanent", 3)
    assert "452 4.2.2" in (row.last_error or "")
    assert summary.failed == 1 and summary.deferred == 0
    assert smtp_server.deliveries() == {}


def test_a_faulty_server_still_delivers_each_recipient_exactly_once(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    seed(engine, 300)
    refused = {f"reader{n}@example.org" for n in range(0, 300, 23)}
    chance = random.Random(47)
    lock = threading.Lock()

    def rcpt(address: str) -> str | None:
        if address in refused:
            return "550 5.1.1 user unknown"
        with lock:
            deferred = chance.random() < 0.2
        return "451 4.3.0 temporary failure, try later" if deferred else None

    def data(envelope: Any) -> str | None:
        with lock:
            return "drop" if chance.random() < 0.05 else None

    smtp_server.rcpt_reply = rcpt
    smtp_server.data_fault = data
    # Dropped connections are relay faults: a limit that three drops in a row cannot reach.
    config = smtp(
        settings, smtp_server, retry_base_seconds=0.01, max_attempts=30, relay_failure_limit=50
    )

    summary = send_pending(engine, config, now=NOW, retry_within=10)

    deliverable = {f"reader{n}@example.org" for n in range(300)} - refused
    assert smtp_server.deliveries() == dict.fromkeys(deliverable, 1)
    rows = states(engine)
    assert {a for a, row in rows.items() if row.state == "failed_permanent"} == refused
    assert {a for a, row in rows.items() if row.state == "sent"} == deliverable
    assert any(row.attempts > 1 for row in rows.values())  # retries did happen
    # The Message-ID was decided when the row was queued: retried messages carry it too.
    sent_ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in smtp_server.received}
    assert sent_ids == {address: rows[address].message_id for address in deliverable}
    assert len(set(sent_ids.values())) == len(deliverable)
    assert summary.sent == len(deliverable) and summary.deferred == 0
    assert summary.editions_sent


def test_without_smtp_the_maildir_receives_the_edition(engine: Engine, settings: Settings) -> None:
    seed(engine, 3)
    summary = send_pending(engine, settings, now=NOW)
    assert summary.sent == 3
    box = mailbox.Maildir(settings.outbox_dir, create=False)
    assert sorted(message["To"] for message in box) == [
        f"Reader {n} <reader{n}@example.org>" for n in range(3)
    ]


def test_subscribers_who_left_after_queueing_are_skipped(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        people = make_subscribers(session, 3)
        enqueue(session, edition, people, settings, now=NOW)
        edition.status = "sending"
        people[1].status = "unsubscribed"
    summary = send_pending(engine, smtp(settings, smtp_server), now=NOW)
    assert summary.skipped == 1 and summary.sent == 2
    assert "reader1@example.org" not in smtp_server.deliveries()
    assert states(engine)["reader1@example.org"].state == "failed_permanent"


def test_rows_queued_without_a_message_id_get_one_when_sent(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        enqueue(session, edition, make_subscribers(session, 2), settings, now=NOW)
    with db.session_scope(engine) as session:  # as the first release queued them
        for row in session.exec(select(OutboxMessage)):
            row.message_id = None
            session.add(row)
    send_pending(engine, smtp(settings, smtp_server), now=NOW)
    rows = states(engine)
    sent_ids = {m.rcpt_tos[0]: m.parsed()["Message-ID"] for m in smtp_server.received}
    assert sent_ids == {address: row.message_id for address, row in rows.items()}
    assert all(sent_ids.values()) and len(set(sent_ids.values())) == 2


def test_stuck_rows_are_reclaimed_after_the_lease_or_when_their_worker_is_gone(
    engine: Engine, settings: Settings
) -> None:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        people = make_subscribers(session, 3)
        enqueue(session, edition, people, settings, now=NOW)
    host = socket.gethostname()
    claims = [
        (f"{host}:999999999:dead", NOW),  # a local process that no longer exists
        ("elsewhere:1:x", NOW - timedelta(minutes=11)),  # lease expired
        ("elsewhere:1:y", NOW - timedelta(minutes=2)),  # still within its lease
    ]
    with db.session_scope(engine) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        for row, (owner, when) in zip(rows, claims, strict=True):
            row.state, row.claimed_by, row.claimed_at = "sending", owner, when
            session.add(row)
    with db.session_scope(engine) as session:
        assert outbox.reclaim(session, now=NOW) == 2
    with db.session_scope(engine) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        assert [row.state for row in rows] == ["queued", "queued", "sending"]


def test_a_stop_request_leaves_nothing_claimed(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    seed(engine, 50)
    stop = threading.Event()
    sent: list[str] = []

    def rcpt(address: str) -> str | None:
        sent.append(address)
        if len(sent) == 10:
            stop.set()  # as SIGTERM does in `diffusion send`
        return None

    smtp_server.rcpt_reply = rcpt
    summary = send_pending(
        engine, smtp(settings, smtp_server, smtp_connections=1), now=NOW, stop_event=stop
    )
    rows = states(engine).values()
    assert 10 <= summary.sent < 50
    assert sum(row.state == "sent" for row in rows) == summary.sent == len(smtp_server.received)
    assert {row.state for row in rows} == {"sent", "queued"}
    summary = send_pending(engine, smtp(settings, smtp_server), now=NOW)  # resumes
    assert smtp_server.deliveries() == {f"reader{n}@example.org": 1 for n in range(50)}


def run(settings: Settings, *args: str) -> Any:
    result = CliRunner().invoke(
        cli, ["--database-url", settings.database, *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


def test_cli_dry_run_test_to_send_status_and_retry(
    engine: Engine, settings: Settings, smtp_server: RecordingServer, monkeypatch: Any
) -> None:
    edition_id = seed(engine, 5)
    monkeypatch.setenv("DIFFUSION_HOME", str(settings.home))
    monkeypatch.setenv("DIFFUSION_SECRET_KEY", "test-secret-key-for-signing-links")
    monkeypatch.setenv("DIFFUSION_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("DIFFUSION_ALLOW_TEST_SETTINGS", "true")

    dry = run(settings, "send", "--period", "2026-11", "--dry-run")
    assert "Dry run" in dry.output and smtp_server.received == []

    run(settings, "send", "--period", "2026-11", "--test-to", "editor@example.org")
    assert smtp_server.deliveries() == {"editor@example.org": 1}
    assert states(engine) == {}  # the outbox is untouched

    smtp_server.rcpt_reply = lambda a: "451 4.3.0 later" if a == "reader4@example.org" else None
    sent = run(settings, "send", "--period", "2026-11")
    assert "4 sent, 1 deferred" in sent.output

    status = json.loads(run(settings, "outbox", "status", "--format", "json").output)
    assert status == [
        {
            "edition": edition_id,
            "segment": "liaison_committee|en|monthly",
            "period": "2026-11",
            "queued": 0,
            "sending": 0,
            "sent": 4,
            "failed_temporary": 1,
            "failed_permanent": 0,
            "last_errors": [{"error": "451 4.3.0 later", "messages": 1}],
        }
    ]
    shown = run(settings, "outbox", "status").output
    assert "2026-11" in shown and f"edition {edition_id}: 1 x 451 4.3.0 later" in shown

    smtp_server.rcpt_reply = None
    assert "1 deferred messages queued again" in run(settings, "outbox", "retry").output
    run(settings, "send", "--resume")
    assert smtp_server.deliveries()["reader4@example.org"] == 1
    with db.session_scope(engine) as session:
        assert session.get(Edition, edition_id).status == "sent"  # type: ignore[union-attr]


def test_a_broken_edition_fails_loudly_and_leaves_its_rows_queued(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        edition.text += "[[diffusion:bogus]]"
        make_subscribers(session, 3)
    with pytest.raises(InvalidInput, match=r"unknown placeholder \[\[diffusion:bogus\]\]"):
        send_pending(engine, smtp(settings, smtp_server), now=NOW)
    assert {row.state for row in states(engine).values()} == {"queued"}
    assert smtp_server.received == []
