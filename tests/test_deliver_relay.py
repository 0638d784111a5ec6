"""Relay faults are the relay's: rows go back to the queue untouched, a breaker stops the send."""

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.cli import cli
from diffusion.config import Settings
from diffusion.deliver import send_pending
from diffusion.models import Edition, OutboxMessage
from tests.smtpserver import RecordingServer, make_edition, make_subscribers, smtp_server

__all__ = ["smtp_server"]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def seed(engine: Engine, count: int) -> int:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        make_subscribers(session, count)
        return int(edition.id)


def rows(engine: Engine) -> list[OutboxMessage]:
    with db.session_scope(engine) as session:
        return list(session.exec(select(OutboxMessage)).all())


def untouched(engine: Engine) -> bool:
    """Every row queued as it was: no attempt used, nothing deferred or failed."""
    found = rows(engine)
    return bool(found) and all(
        (row.state, row.attempts, row.next_attempt_at) == ("queued", 0, None) for row in found
    )


def invoke(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--database-url", settings.database, *args])


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFUSION_HOME", str(settings.home))
    monkeypatch.setenv("DIFFUSION_SECRET_KEY", "test-secret-key-for-signing-links")
    monkeypatch.setenv("DIFFUSION_ALLOW_TEST_SETTINGS", "true")


def test_a_relay_refusing_the_sender_stops_the_send_and_a_resume_sends_everyone_once(
    engine: Engine,
    settings: Settings,
    smtp_server: RecordingServer,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edition_id = seed(engine, 40)
    monkeypatch.setenv("DIFFUSION_SMTP_URL", smtp_server.url)
    smtp_server.verb_fault = lambda verb: (
        "530 5.7.0 Authentication required" if verb == "MAIL" else None
    )

    result = invoke(settings, "send", "--period", "2026-11")

    assert result.exit_code == 1, result.output
    assert "the relay refused the sender: 530 5.7.0 Authentication required" in result.output
    assert "Traceback" not in result.output
    assert untouched(engine)  # nobody failed for good, no attempt used
    with db.session_scope(engine) as session:
        assert session.get(Edition, edition_id).status == "sending"  # type: ignore[union-attr]
    assert smtp_server.received == []

    smtp_server.verb_fault = None  # the password is fixed
    result = invoke(settings, "send", "--resume")
    assert result.exit_code == 0, result.output
    assert smtp_server.deliveries() == {f"reader{n}@example.org": 1 for n in range(40)}
    with db.session_scope(engine) as session:
        assert session.get(Edition, edition_id).status == "sent"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("verb", "reply", "reason"),
    [
        ("EHLO HELO", "554 5.7.1 you are not welcome", "the relay refused the greeting"),
        ("MAIL", "451 4.3.2 system not accepting messages", "the relay refused the sender"),
        ("RCPT", "421 4.3.2 shutting down", "the relay closed the session"),
    ],
)
def test_session_refusals_are_the_relays(
    sqlite_url: str,
    tmp_path: Any,
    smtp_server: RecordingServer,
    verb: str,
    reply: str,
    reason: str,
) -> None:
    from diffusion.config import load_settings

    settings = load_settings(
        home=tmp_path,
        database_url=sqlite_url,
        secret_key="k-for-signing-links-0123456789ab",
        smtp_url=smtp_server.url,
    )
    engine = db.make_engine(sqlite_url)
    seed(engine, 20)
    smtp_server.verb_fault = lambda v: reply if v in verb.split() else None
    summary = send_pending(engine, settings, now=NOW)
    assert summary.halted is not None and summary.halted.startswith(reason)
    assert reply in summary.halted
    assert untouched(engine)
    assert summary.sent == summary.failed == summary.deferred == 0


@pytest.fixture
def silent_relay() -> Iterator[int]:
    """A server that accepts connections and never says a word; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


def test_a_hung_relay_trips_the_breaker_and_uses_nobodys_attempts(
    engine: Engine, settings: Settings, silent_relay: int
) -> None:
    seed(engine, 200)
    config = settings.replace(smtp_url=f"smtp://127.0.0.1:{silent_relay}", smtp_timeout=0.5)
    summary = send_pending(engine, config, now=NOW)
    assert summary.halted == f"the relay 127.0.0.1:{silent_relay} did not answer within 0.5 s"
    assert untouched(engine)
    # The breaker stopped it after a few connections' worth, not one timeout per recipient.
    assert summary.requeued < 200


def test_a_relay_answering_mid_session_then_silent_trips_the_breaker(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    seed(engine, 50)
    smtp_server.verb_fault = lambda verb: "hang" if verb == "MAIL" else None
    config = settings.replace(smtp_url=smtp_server.url, smtp_timeout=0.5)
    summary = send_pending(engine, config, now=NOW)
    assert summary.halted is not None and "did not answer within 0.5 s" in summary.halted
    assert untouched(engine)


def test_an_unreachable_relay_says_so_and_exits_non_zero(
    engine: Engine, settings: Settings, cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(engine, 5)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens there
    monkeypatch.setenv("DIFFUSION_SMTP_URL", f"smtp://127.0.0.1:{port}")
    result = invoke(settings, "send", "--period", "2026-11")
    assert result.exit_code == 1, result.output
    assert f"the relay 127.0.0.1:{port} could not be reached" in result.output
    assert "Traceback" not in result.output
    assert untouched(engine)


def test_recipient_refusals_never_trip_the_breaker(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    seed(engine, 30)
    smtp_server.rcpt_reply = lambda a: "550 5.1.1 no such user" if a < "reader2" else None
    config = settings.replace(smtp_url=smtp_server.url, relay_failure_limit=2)
    summary = send_pending(engine, config, now=NOW)
    assert summary.halted is None
    assert summary.failed == 12 and summary.sent == 18  # reader0, reader1, reader10-19
    assert summary.reasons == {"550 5.1.1 no such user": 12}


def test_send_names_each_reason_with_its_count_and_fails_when_nothing_went(
    engine: Engine,
    settings: Settings,
    smtp_server: RecordingServer,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(engine, 4)
    monkeypatch.setenv("DIFFUSION_SMTP_URL", smtp_server.url)
    smtp_server.rcpt_reply = lambda a: (
        "552 5.2.2 mailbox full" if a.startswith("reader1") else "451 4.7.1 greylisted"
    )
    result = invoke(settings, "send", "--period", "2026-11")
    assert result.exit_code == 1, result.output
    assert "3 x 451 4.7.1 greylisted" in result.output
    assert "1 x 552 5.2.2 mailbox full" in result.output
    assert "nothing could be delivered" in result.output
