"""Several relays: shared by weight, a failing one left aside and taken back, each row's relay."""

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from diffusion import db
from diffusion.config import Settings, load_settings
from diffusion.deliver import SendSummary, send_pending
from diffusion.deliver.relays import Relay, RelayPool
from diffusion.deliver.relayserver import SMTPServer
from diffusion.deliver.transport import SMTPTransport
from diffusion.errors import ConfigError
from diffusion.models import OutboxMessage, Person
from tests.smtpserver import RecordingServer, make_edition, make_subscribers

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def two() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    first, second = RecordingServer().start(), RecordingServer().start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def name(server: RecordingServer) -> str:
    return f"{server.host}:{server.port}"


def configured(tmp_path: Path, sqlite_url: str, url: str, **extra: object) -> Settings:
    return load_settings(
        home=tmp_path,
        database_url=sqlite_url,
        secret_key="test-secret-key-for-signing-links",
        smtp_url=url,
        **extra,
    )


def send(
    settings: Settings, sqlite_url: str, count: int
) -> tuple[SendSummary, dict[str, str | None]]:
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session:
        make_edition(session)
        make_subscribers(session, count)
    summary = send_pending(engine, settings, now=NOW)
    with db.session_scope(engine) as session:
        found = session.exec(
            select(OutboxMessage, Person).where(OutboxMessage.subscriber_id == Person.id)
        ).all()
        relays = {person.email: row.relay for row, person in found if row.state == "sent"}
    engine.dispose()
    return summary, relays


def test_with_one_relay_refusing_the_sender_everything_goes_through_the_other(
    tmp_path: Path, sqlite_url: str, two: tuple[RecordingServer, RecordingServer]
) -> None:
    refusing, working = two
    refusing.verb_fault = lambda verb: (
        "530 5.7.0 Authentication required" if verb == "MAIL" else None
    )
    settings = configured(tmp_path, sqlite_url, f"{refusing.url} {working.url}")

    summary, relays = send(settings, sqlite_url, 40)

    assert summary.halted is None and summary.requeued == 0
    assert working.deliveries() == {f"reader{n}@example.org": 1 for n in range(40)}
    assert refusing.received == []
    assert set(relays.values()) == {name(working)}  # each row says which relay took it
    assert len(relays) == 40


def test_messages_are_shared_by_weight_and_each_row_names_its_relay(
    tmp_path: Path, sqlite_url: str, two: tuple[RecordingServer, RecordingServer]
) -> None:
    heavy, light = two
    settings = configured(tmp_path, sqlite_url, f"{heavy.url}?weight=3,{light.url}")

    summary, relays = send(settings, sqlite_url, 80)

    assert summary.sent == 80
    assert (len(heavy.received), len(light.received)) == (60, 20)
    assert Counter(relays.values()) == {name(heavy): 60, name(light): 20}
    for address, relay in relays.items():
        server = heavy if relay == name(heavy) else light
        assert server.deliveries()[address] == 1


def test_a_failing_relay_rests_then_gets_messages_again(
    tmp_path: Path, two: tuple[RecordingServer, RecordingServer]
) -> None:
    flaky, steady = two
    refusals: list[str] = []

    def refuse(verb: str) -> str | None:
        if verb != "MAIL":
            return None
        refusals.append(verb)
        return "421 4.3.2 shutting down"

    flaky.verb_fault = refuse
    settings = load_settings(home=tmp_path, smtp_url=flaky.url)
    clock = [0.0]
    pool = RelayPool(
        [
            Relay(name(server), SMTPTransport(SMTPServer.from_url(server.url, settings), 1))
            for server in (flaky, steady)
        ],
        failure_limit=2,
        rest_seconds=60,
        clock=lambda: clock[0],
    )
    data = b"Subject: hello\r\n\r\nHello\r\n"

    async def round_of(count: int) -> Counter[str]:
        taken: Counter[str] = Counter()
        for n in range(count):
            outcomes = await pool.deliver("news@example.org", [f"r{n}@example.org"], data)
            (outcome,) = outcomes.values()
            assert outcome.kind == "sent"
            taken[outcome.relay] += 1
        return taken

    async def scenario() -> list[Counter[str]]:
        try:
            failing = await round_of(6)  # the flaky relay refuses twice, then rests
            clock[0] += 30
            resting = await round_of(6)
            flaky.verb_fault = None  # it recovered
            clock[0] += 31  # its rest is over
            recovered = await round_of(6)
            return [failing, resting, recovered]
        finally:
            await pool.close()

    failing, resting, recovered = asyncio.run(scenario())
    assert failing == {name(steady): 6}
    assert len(refusals) == 2  # then it rested: not asked again during its rest
    assert resting == {name(steady): 6}
    assert recovered == {name(flaky): 3, name(steady): 3}
    assert len(flaky.received) == 3 and len(steady.received) == 15


def test_relay_lists_are_checked_at_load(tmp_path: Path) -> None:
    for bad, says in [
        ("smtp://a.example.org?weight=0", "weight=N"),
        ("smtp://a.example.org smtp://", "no host"),
        ("smtp://a.example.org, http://b.example.org", "scheme must be smtp://"),
        ("smtp://a.example.org?tls=yes", "the only option is weight=N"),
    ]:
        with pytest.raises(ConfigError, match=says):
            load_settings(home=tmp_path, smtp_url=bad)
