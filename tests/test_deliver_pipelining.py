"""PIPELINING: the same end states with and without it, faults inside groups included."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.smtp import Envelope
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.config import Settings, load_settings
from diffusion.deliver import send_pending
from diffusion.deliver.concurrency import ConnectionLimit
from diffusion.deliver.transport import make_transport
from diffusion.models import OutboxMessage, Person
from tests.smtpserver import RecordingServer, make_edition, make_subscribers

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
def relay(request: pytest.FixtureRequest) -> Iterator[RecordingServer]:
    """A recording server that offers PIPELINING, or one that does not."""
    server = RecordingServer(pipelining=request.param).start()
    try:
        yield server
    finally:
        server.stop()


def configured(
    tmp_path: Path, sqlite_url: str, relay: RecordingServer, **extra: object
) -> Settings:
    return load_settings(
        home=tmp_path,
        database_url=sqlite_url,
        secret_key="test-secret-key-for-signing-links",
        smtp_url=relay.url,
        **extra,
    )


def seed(engine: Engine, count: int) -> None:
    with db.session_scope(engine) as session:
        make_edition(session)
        make_subscribers(session, count)


def end_states(engine: Engine) -> dict[str, tuple[str, int, str]]:
    """Per address: the row's state, attempts used and last error."""
    with db.session_scope(engine) as session:
        found = session.exec(select(OutboxMessage, Person).where(
            OutboxMessage.subscriber_id == Person.id
        )).all()  # fmt: skip
        return {p.email: (row.state, row.attempts, row.last_error or "") for row, p in found}


def expected_states(count: int) -> dict[str, tuple[str, int, str]]:
    """What the faults of `faulty_relay` leave, whichever way the commands went."""
    states = {}
    for n in range(count):
        address = f"reader{n}@example.org"
        if n % 10 == 3:
            states[address] = ("failed_temporary", 1, "451 4.7.1 greylisted")
        elif n % 10 == 5:
            states[address] = ("failed_permanent", 1, "550 5.1.1 no such user")
        elif n % 10 == 7:
            states[address] = ("failed_permanent", 1, "554 5.6.0 content rejected")
        elif n % 10 == 8:
            states[address] = ("failed_temporary", 1, "452 4.3.1 out of storage")
        else:
            states[address] = ("sent", 1, "")
    return states


def faulty_relay(relay: RecordingServer, count: int) -> set[str]:
    """Refusals at RCPT and at the end of data (4xx and 5xx), one drop and one 421 once each.

    Returns the addresses whose first attempt the relay cut off.
    """
    cut_once = {"reader11@example.org", "reader24@example.org"}
    seen: set[str] = set()

    def rcpt(address: str) -> str | None:
        n = int(address.removeprefix("reader").split("@")[0])
        if address == "reader24@example.org" and address not in seen:
            seen.add(address)
            return "421 4.3.2 shutting down"
        if n % 10 == 3:
            return "451 4.7.1 greylisted"
        if n % 10 == 5:
            return "550 5.1.1 no such user"
        return None

    def data(envelope: Envelope) -> str | None:
        address = envelope.rcpt_tos[0]
        n = int(address.removeprefix("reader").split("@")[0])
        if address == "reader11@example.org" and address not in seen:
            seen.add(address)
            return "drop"  # the connection goes away before the final answer
        if n % 10 == 7:
            return "554 5.6.0 content rejected"
        if n % 10 == 8:
            return "452 4.3.1 out of storage"
        return None

    relay.rcpt_reply = rcpt
    relay.data_fault = data
    return cut_once


def test_every_message_ends_as_it_would_one_command_at_a_time(
    tmp_path: Path, sqlite_url: str, relay: RecordingServer
) -> None:
    count = 60
    engine = db.make_engine(sqlite_url)
    seed(engine, count)
    cut = faulty_relay(relay, count)
    settings = configured(tmp_path, sqlite_url, relay, relay_failure_limit=5)

    summary = send_pending(engine, settings, now=NOW)

    assert summary.halted is None
    # The relay's faults, put back and sent again; a drop also takes the message whose commands
    # were already written behind the one cut off.
    assert len(cut) <= summary.requeued <= len(cut) + (1 if relay.pipelining else 0)
    assert end_states(engine) == expected_states(count)
    sent = {a for a, (state, _, _) in expected_states(count).items() if state == "sent"}
    assert relay.deliveries() == dict.fromkeys(sent, 1)  # each accepted message once
    # The commands really went in groups when the relay offered it, and never otherwise.
    assert (relay.pipelined > count // 2) is relay.pipelining
    assert relay.pipelined == 0 or relay.pipelining


def test_a_message_to_several_recipients_gets_each_recipients_reply(
    tmp_path: Path, relay: RecordingServer
) -> None:
    relay.rcpt_reply = lambda a: {
        "b@example.org": "550 5.1.1 no such user",
        "d@example.org": "450 4.2.1 mailbox busy",
    }.get(a)
    settings = load_settings(home=tmp_path, smtp_url=relay.url)
    recipients = [f"{x}@example.org" for x in "abcde"]
    data = b"Subject: several\r\n\r\nHello\r\n"

    async def send() -> list[dict[str, tuple[str, str]]]:
        transport = make_transport(settings, connections=1)
        try:
            answers = await asyncio.gather(
                *(transport.deliver("news@example.org", recipients, data) for _ in range(3))
            )
        finally:
            await transport.close()
        return [{r: (o.kind, o.reply) for r, o in answer.items()} for answer in answers]

    answers = asyncio.run(send())
    for outcomes in answers:
        assert outcomes["b@example.org"] == ("permanent", "550 5.1.1 no such user")
        assert outcomes["d@example.org"] == ("temporary", "450 4.2.1 mailbox busy")
        assert {outcomes[r][0] for r in ("a@example.org", "c@example.org", "e@example.org")} == {
            "sent"
        }
    assert relay.deliveries() == {"a@example.org": 3, "c@example.org": 3, "e@example.org": 3}


def test_a_message_nobody_accepts_leaves_the_connection_ready_for_the_next(
    tmp_path: Path, relay: RecordingServer
) -> None:
    """All RCPT refused: the server holds the sender until RSET, then the next message goes."""
    relay.rcpt_reply = lambda a: "550 5.1.1 no such user" if a.startswith("nobody") else None
    settings = load_settings(home=tmp_path, smtp_url=relay.url)
    data = b"Subject: alone\r\n\r\nHello\r\n"

    async def send() -> list[str]:
        transport = make_transport(settings, connections=1)
        try:
            answers = await asyncio.gather(
                *(
                    transport.deliver("news@example.org", [f"{who}{n}@example.org"], data)
                    for n in range(4)
                    for who in ("nobody", "somebody")
                )
            )
        finally:
            await transport.close()
        return [next(iter(answer.values())).kind for answer in answers]

    assert asyncio.run(send()) == ["permanent", "sent"] * 4
    assert relay.deliveries() == {f"somebody{n}@example.org": 1 for n in range(4)}


def test_a_refused_sender_inside_a_group_is_the_relays_fault(
    tmp_path: Path, sqlite_url: str, relay: RecordingServer
) -> None:
    engine = db.make_engine(sqlite_url)
    seed(engine, 12)
    relay.verb_fault = lambda verb: "451 4.3.2 not now" if verb == "MAIL" else None
    summary = send_pending(engine, configured(tmp_path, sqlite_url, relay), now=NOW)
    assert summary.halted == "the relay refused the sender: 451 4.3.2 not now"
    assert {state for state, _, _ in end_states(engine).values()} == {"queued"}
    assert relay.received == []


def test_a_relay_refusing_connections_beyond_its_limit_gets_no_more_and_everything(
    tmp_path: Path, sqlite_url: str, relay: RecordingServer
) -> None:
    engine = db.make_engine(sqlite_url)
    seed(engine, 300)
    relay.max_sessions = 1  # the sender opens two to start with
    settings = configured(tmp_path, sqlite_url, relay, smtp_connections=6, relay_failure_limit=1)

    summary = send_pending(engine, settings, now=NOW)

    # The refusals were the sign to open no more, not faults: nothing put back, no breaker.
    assert summary.halted is None and summary.requeued == 0
    assert summary.sent == 300
    assert relay.deliveries() == {f"reader{n}@example.org": 1 for n in range(300)}
    assert relay.crowded >= 1 and relay.peak_sessions == 1


def test_connections_open_as_throughput_grows_and_stop_when_it_does_not() -> None:
    limit = ConnectionLimit(64)
    assert limit.allowed == 4

    def window(seconds: float) -> None:
        limit._since -= seconds  # the window took this long
        for _ in range(limit.WINDOW * limit.allowed):
            limit.answered()

    window(1.0)  # the first measurement
    assert limit.allowed == 8
    window(0.5)  # twice the messages in half the time: more connections paid
    assert limit.allowed == 16
    window(2.0)  # twice the messages in four times the time: no more
    assert (limit.allowed, limit.growing) == (16, False)
    assert limit.crowded(open_now=5) and limit.allowed == 5
    assert not limit.crowded(open_now=0)  # then it is the relay's fault, as before


def test_a_connection_cut_right_after_the_go_ahead_leaves_no_message_waiting(
    tmp_path: Path, relay: RecordingServer
) -> None:
    """The relay says 354 and goes: that message and the one taken to follow it get answers."""
    cuts = [1]

    def go_ahead_then_cut(verb: str) -> str | None:
        if verb != "DATA" or not cuts:
            return None
        cuts.pop()
        return "354 End data with <CR><LF>.<CR><LF>+drop"

    relay.verb_fault = go_ahead_then_cut
    settings = load_settings(home=tmp_path, smtp_url=relay.url)
    data = b"Subject: cut\r\n\r\nHello\r\n"

    async def send() -> list[str]:
        transport = make_transport(settings, connections=1)
        try:
            answers = await asyncio.wait_for(  # a message nobody answers would hang here
                asyncio.gather(
                    *(
                        transport.deliver("news@example.org", [f"r{n}@example.org"], data)
                        for n in range(4)
                    )
                ),
                timeout=60,
            )
        finally:
            await transport.close()
        return [next(iter(answer.values())).kind for answer in answers]

    kinds = asyncio.run(send())
    assert kinds[0] == "relay"  # cut off: back to the queue, untouched
    assert kinds.count("sent") >= 2 and set(kinds) <= {"sent", "relay"}
    assert len(relay.received) == kinds.count("sent")
