"""Crash safety: kill -9 mid-send then resume; concurrent senders on one database."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.config import Settings
from diffusion.deliver import send_pending
from diffusion.deliver.sender import RECORD_BATCH
from diffusion.models import Edition, OutboxMessage
from tests.smtpserver import RecordingServer, make_edition, make_subscribers, smtp_server

__all__ = ["smtp_server"]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SENDER = """
import sys
from datetime import UTC, datetime
from diffusion import db
from diffusion.config import load_settings
from diffusion.deliver import send_pending

settings = load_settings()
summary = send_pending(db.engine_for(settings), settings, now=datetime.now(UTC))
print(summary.sent, flush=True)
"""


def seed(engine: Engine, count: int) -> int:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        make_subscribers(session, count)
        return int(edition.id)


def environment(settings: Settings, server: RecordingServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFUSION_")}
    env.update(
        DIFFUSION_HOME=str(settings.home),
        DIFFUSION_DATABASE_URL=settings.database,
        DIFFUSION_SECRET_KEY="test-secret-key-for-signing-links",
        DIFFUSION_SMTP_URL=server.url,
        DIFFUSION_SMTP_CONNECTIONS="2",
        DIFFUSION_ALLOW_TEST_SETTINGS="true",  # a test relay, links to 127.0.0.1
        **extra,
    )
    return env


def slow_down(server: RecordingServer, seconds: float) -> None:
    """Make every DATA take a while, so that a sender is caught mid-send."""

    def data(_envelope: Any) -> None:
        time.sleep(seconds)  # blocks the server's loop: the whole server goes at this pace

    server.data_fault = data


def rows(engine: Engine) -> list[OutboxMessage]:
    with db.session_scope(engine) as session:
        return list(session.exec(select(OutboxMessage)).all())


@pytest.mark.parametrize(
    ("count", "kill_after", "data_seconds"),
    [(400, 120, 0.004), (20_000, 10_000, 0.0)],
    ids=["400-slow-server", "20000"],
)
def test_kill_9_mid_send_then_resume_misses_nobody(
    engine: Engine,
    settings: Settings,
    smtp_server: RecordingServer,
    count: int,
    kill_after: int,
    data_seconds: float,
) -> None:
    edition_id = seed(engine, count)
    if data_seconds:
        slow_down(smtp_server, data_seconds)
    env = environment(settings, smtp_server)
    process = subprocess.Popen([sys.executable, "-c", SENDER], env=env)
    deadline = time.monotonic() + 120
    while len(smtp_server.received) < kill_after and time.monotonic() < deadline:
        assert process.poll() is None, "the sender finished before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.5)  # let the server finish a DATA it had fully read when the sender died
    received_before = len(smtp_server.received)
    recorded = sum(row.state == "sent" for row in rows(engine))
    assert 0 < received_before < count
    assert recorded <= received_before  # a row is marked sent only after the server said yes
    in_flight = received_before - recorded

    smtp_server.data_fault = None
    command = [str(Path(sys.executable).parent / "diffusion"), "send", "--resume"]
    resume = subprocess.run(command, env=env, capture_output=True, text=True)
    assert resume.returncode == 0, resume.stderr

    deliveries = smtp_server.deliveries()
    expected = {f"reader{n}@example.org" for n in range(count)}
    assert set(deliveries) == expected  # nobody missing
    twice = [address for address, times in deliveries.items() if times > 1]
    assert max(deliveries.values()) <= 2
    assert len(twice) <= in_flight <= RECORD_BATCH + 2 * 2  # only what was unrecorded
    assert {row.state for row in rows(engine)} == {"sent"}
    with db.session_scope(engine) as session:
        assert session.get(Edition, edition_id).status == "sent"  # type: ignore[union-attr]


def test_two_sender_processes_on_one_database_send_each_message_once(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    count = 500
    seed(engine, count)
    slow_down(smtp_server, 0.002)
    env = environment(settings, smtp_server)
    senders = [
        subprocess.Popen([sys.executable, "-c", SENDER], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [sender.communicate(timeout=120)[0] for sender in senders]
    assert [sender.returncode for sender in senders] == [0, 0]
    assert sum(int(output.split()[-1]) for output in outputs) == count
    assert smtp_server.deliveries() == Counter(f"reader{n}@example.org" for n in range(count))
    assert {row.state for row in rows(engine)} == {"sent"}


def test_worker_processes_share_the_outbox(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    count = 300
    edition_id = seed(engine, count)
    refused = {f"reader{n}@example.org" for n in range(0, count, 25)}
    smtp_server.rcpt_reply = lambda a: "550 5.1.1 no such mailbox" if a in refused else None
    config = settings.replace(smtp_url=smtp_server.url, smtp_connections=2)
    summary = send_pending(engine, config, now=NOW, workers=2)
    # Each worker counts its own; the summary adds them up, failures included.
    assert (summary.sent, summary.failed) == (count - len(refused), len(refused))
    assert sum(summary.reasons.values()) == len(refused)
    assert summary.editions_sent == [edition_id]
    sent = Counter(f"reader{n}@example.org" for n in range(count))
    assert smtp_server.deliveries() == sent - Counter(refused)


def test_sigterm_finishes_what_is_in_flight_and_records_it(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    count = 400
    seed(engine, count)
    slow_down(smtp_server, 0.004)
    env = environment(settings, smtp_server)
    command = [str(Path(sys.executable).parent / "diffusion"), "send", "--period", "2026-11"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(smtp_server.received) < 60 and time.monotonic() < deadline:
        assert process.poll() is None, "the sender finished before it could be stopped"
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0
    assert "Stopped on request" in output
    states = Counter(row.state for row in rows(engine))
    assert "sending" not in states  # nothing left claimed
    assert states["sent"] == len(smtp_server.received) < count  # everything sent is recorded
    assert states["sent"] + states["queued"] == count
