"""A database outage mid-send: nothing is delivered that cannot be recorded, nobody is lost."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.cli import cli
from diffusion.deliver.sender import RECORD_BATCH
from diffusion.deliver.transport import IN_FLIGHT
from diffusion.models import OutboxMessage
from tests.conftest import _postgres_database
from tests.smtpserver import RecordingServer, make_edition, make_subscribers, smtp_server
from tests.tcpproxy import TcpProxy

__all__ = ["smtp_server"]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    for url in _postgres_database():
        db.upgrade(url)
        yield url


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    port = sa.engine.make_url(db.normalise_url(postgres_url)).port or 5432
    found = TcpProxy(port).start()
    yield found
    found.stop()


def through(url: str, proxy: TcpProxy) -> str:
    return (
        sa.engine.make_url(db.normalise_url(url))
        .set(port=proxy.port)
        .render_as_string(hide_password=False)
    )


def seed(url: str, count: int) -> None:
    engine = db.make_engine(url)
    with db.session_scope(engine) as session:
        make_edition(session)
        make_subscribers(session, count)
    engine.dispose()


def rows(engine: Engine) -> list[OutboxMessage]:
    with db.session_scope(engine) as session:
        return list(session.exec(select(OutboxMessage)).all())


def outage_after(
    server: RecordingServer, proxy: TcpProxy, messages: int, seconds: float
) -> threading.Event:
    """Cut the database off once the relay has seen `messages` recipients, for `seconds`."""
    seen = [0]
    restored = threading.Event()

    def outage() -> None:
        proxy.cut()
        time.sleep(seconds)
        proxy.restore()
        restored.set()

    def rcpt(_address: str) -> None:
        seen[0] += 1
        if seen[0] == messages:
            threading.Thread(target=outage, daemon=True).start()

    server.rcpt_reply = rcpt
    return restored


def send(url: str, home: Path, server: RecordingServer, *args: str, **env: str) -> Any:
    environment = {
        "DIFFUSION_HOME": str(home),
        "DIFFUSION_SECRET_KEY": "test-secret-key-for-signing-links",
        "DIFFUSION_SMTP_URL": server.url,
        "DIFFUSION_ALLOW_TEST_SETTINGS": "true",
        **env,
    }
    return CliRunner().invoke(cli, ["--database-url", url, "send", *args], env=environment)


def test_ten_seconds_without_the_database_mid_send_lose_nobody_and_send_nobody_twice(
    postgres_url: str, proxy: TcpProxy, smtp_server: RecordingServer, tmp_path: Path
) -> None:
    count = 5000
    seed(postgres_url, count)
    restored = outage_after(smtp_server, proxy, 1500, 10.0)

    result = send(through(postgres_url, proxy), tmp_path, smtp_server, "--period", "2026-11")

    assert restored.is_set(), (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    deliveries = smtp_server.deliveries()
    assert set(deliveries) == {f"reader{n}@example.org" for n in range(count)}
    twice = sum(n - 1 for n in deliveries.values())
    assert twice <= 4 * IN_FLIGHT  # at most the messages in flight on the 4 connections
    engine = db.make_engine(postgres_url)
    assert {row.state for row in rows(engine)} == {"sent"}
    engine.dispose()


def test_an_outage_longer_than_the_wait_stops_with_one_line_and_a_resume_finishes(
    postgres_url: str, proxy: TcpProxy, smtp_server: RecordingServer, tmp_path: Path
) -> None:
    count = 600
    seed(postgres_url, count)
    restored = outage_after(smtp_server, proxy, 200, 3.0)
    url = through(postgres_url, proxy)
    wait = {"DIFFUSION_DATABASE_OUTAGE_SECONDS": "1", "DIFFUSION_SEND_LEASE_SECONDS": "1"}

    result = send(url, tmp_path, smtp_server, "--period", "2026-11", **wait)

    assert result.exit_code == 1, result.output
    assert "the database stopped answering" in result.output
    assert "gave up after 1 s" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3
    sent_before = len(smtp_server.received)
    assert sent_before < count

    restored.wait(10)
    time.sleep(1.1)  # the lease of the rows it held runs out
    result = send(url, tmp_path, smtp_server, "--resume", **wait)
    assert result.exit_code == 0, result.output
    deliveries = smtp_server.deliveries()
    assert set(deliveries) == {f"reader{n}@example.org" for n in range(count)}
    # At most what was sent but not yet recorded when the database went away, and what was in
    # flight on the 4 connections (IN_FLIGHT messages each since pipelining).
    assert sum(n - 1 for n in deliveries.values()) <= RECORD_BATCH + 4 * IN_FLIGHT
