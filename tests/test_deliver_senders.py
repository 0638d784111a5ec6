"""[[senders]]: an office's digest goes out under its own From, through its own relay only."""

import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import select

from diffusion import db
from diffusion.bounces.process import process_bounces
from diffusion.cli import cli
from diffusion.config import Settings, load_settings
from diffusion.contracts import Segment
from diffusion.deliver import send_pending
from diffusion.deliver.enqueue import enqueue
from diffusion.deliver.relayserver import SMTPServer
from diffusion.errors import ConfigError
from diffusion.models import Edition, OutboxMessage, Person
from tests.smtpserver import EDITION_HTML, EDITION_TEXT, RecordingServer, make_subscribers

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DHAKA = {
    "audience": "field_office",
    "key": "dhaka",
    "name": {"en": "UNESCO Dhaka Office", "fr": "Bureau de l'UNESCO à Dhaka"},
    "address": "dhaka@dhaka.unesco.example.org",
    "reply_to": "programmes@dhaka.unesco.example.org",
}
OFFICES = {"audience": "field_office", "name": "UNESCO Field Offices", "address": "fo@example.org"}


@pytest.fixture
def two() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    shared, office = RecordingServer().start(), RecordingServer().start()
    try:
        yield shared, office
    finally:
        shared.stop()
        office.stop()


def configured(tmp_path: Path, sqlite_url: str, shared: str, office: str) -> Settings:
    return load_settings(
        home=tmp_path,
        database_url=sqlite_url,
        secret_key="test-secret-key-for-signing-links",
        smtp_url=shared,
        from_address="partners@unesco.example.org",
        sender_names={"en": "NGO-UNESCO Partnership"},
        senders=[{**DHAKA, "relay": office}, OFFICES],
    )


def edition(session: Any, audience: str, key: str = "") -> Edition:
    segment = Segment(audience=audience, key=key)
    row = Edition(
        segment=segment.id,
        audience=audience,
        key=key,
        language="en",
        period="2026-11",
        subject=f"Digest of {audience} {key}",
        html=EDITION_HTML,
        text=EDITION_TEXT,
        item_count=4,
        status="approved",
    )
    session.add(row)
    session.flush()
    return row


def queue(settings: Settings, sqlite_url: str, dhaka: int = 3) -> None:
    """Three editions, queued in this order: Dhaka's office (3 readers), Bangkok's (2), the
    liaison committee (2)."""
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session:
        for audience, key, prefix, count in (
            ("field_office", "dhaka", "dhaka", dhaka),
            ("field_office", "bangkok", "bangkok", 2),
            ("liaison_committee", "", "liaison", 2),
        ):
            people = make_subscribers(session, count, audience=audience, prefix=prefix)
            enqueue(session, edition(session, audience, key), people, settings, now=NOW)
    engine.dispose()


def relays_of_rows(sqlite_url: str) -> dict[str, tuple[str, str | None]]:
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session:
        found = session.exec(
            select(OutboxMessage, Person).where(OutboxMessage.subscriber_id == Person.id)
        ).all()
        rows = {person.email: (row.state, row.relay) for row, person in found}
    engine.dispose()
    return rows


def name(server: RecordingServer) -> str:
    return f"{server.host}:{server.port}"


def test_the_office_digest_goes_out_as_the_office_through_its_relay_the_rest_as_before(
    tmp_path: Path, sqlite_url: str, two: tuple[RecordingServer, RecordingServer]
) -> None:
    shared, office = two
    settings = configured(tmp_path, sqlite_url, shared.url, office.url)
    queue(settings, sqlite_url)

    summary = send_pending(db.make_engine(sqlite_url), settings, now=NOW)

    assert summary.sent == 7 and summary.halted is None
    dhaka = [f"dhaka{n}@example.org" for n in range(3)]
    assert office.deliveries() == dict.fromkeys(dhaka, 1)
    others = [f"bangkok{n}@example.org" for n in range(2)]
    others += [f"liaison{n}@example.org" for n in range(2)]
    assert shared.deliveries() == dict.fromkeys(others, 1)
    for received in office.received:
        message = received.parsed()
        assert parseaddr(str(message["From"])) == ("UNESCO Dhaka Office", DHAKA["address"])
        assert str(message["Reply-To"]) == DHAKA["reply_to"]
        assert str(message["Message-ID"]).endswith("@dhaka.unesco.example.org>")
        assert received.mail_from.startswith("bounces+")
        assert received.mail_from.endswith("@dhaka.unesco.example.org")
    for received in shared.received:
        message = received.parsed()
        sender = parseaddr(str(message["From"]))
        if received.rcpt_tos[0].startswith("bangkok"):  # the audience's entry, without a key
            assert sender == ("UNESCO Field Offices", "fo@example.org")
        else:
            assert sender == ("NGO-UNESCO Partnership", "partners@unesco.example.org")
            assert received.mail_from.endswith("@unesco.example.org")
        assert message["Reply-To"] is None
    rows = relays_of_rows(sqlite_url)
    assert {email: rows[email] for email in dhaka} == dict.fromkeys(dhaka, ("sent", name(office)))
    assert {email: rows[email] for email in others} == dict.fromkeys(others, ("sent", name(shared)))


def test_when_the_office_relay_refuses_only_its_mail_waits_and_never_takes_the_shared_relay(
    tmp_path: Path, sqlite_url: str, two: tuple[RecordingServer, RecordingServer]
) -> None:
    """Dhaka's twelve messages come first in the queue, more than relay_failure_limit (3): its
    relay's faults must not stop the send for Bangkok's office and the liaison committee."""
    shared, office = two
    office.verb_fault = lambda verb: "530 5.7.0 Authentication required" if verb == "MAIL" else None
    settings = configured(tmp_path, sqlite_url, shared.url, office.url)
    queue(settings, sqlite_url, dhaka=12)

    summary = send_pending(db.make_engine(sqlite_url), settings, now=NOW)

    assert office.received == []
    others = [f"bangkok{n}@example.org" for n in range(2)]
    others += [f"liaison{n}@example.org" for n in range(2)]
    assert shared.deliveries() == dict.fromkeys(others, 1)  # no Dhaka message among them
    rows = relays_of_rows(sqlite_url)
    assert {rows[f"dhaka{n}@example.org"] for n in range(12)} == {("queued", None)}
    assert summary.halted is None and summary.sent == 4
    assert summary.held_back == {name(office): ("the relay refused the sender: 530 5.7.0 "
                                                "Authentication required", 12)}  # fmt: skip
    assert (
        f"the relay {name(office)} of a [[senders]] entry kept failing (the relay refused the "
        "sender: 530 5.7.0 Authentication required); its 12 messages stay queued"
    ) in summary.summary()

    office.verb_fault = None  # the office's login is fixed: the next send takes them
    summary = send_pending(db.make_engine(sqlite_url), settings, now=NOW, resume_only=True)
    assert summary.sent == 12 and not summary.held_back
    assert office.deliveries() == {f"dhaka{n}@example.org": 1 for n in range(12)}
    assert shared.deliveries() == dict.fromkeys(others, 1)


def test_the_send_command_says_which_office_relay_failed_and_exits_1(
    tmp_path: Path,
    sqlite_url: str,
    two: tuple[RecordingServer, RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared, office = two
    office.verb_fault = lambda verb: "421 4.3.2 service not available" if verb == "MAIL" else None
    settings = configured(tmp_path, sqlite_url, shared.url, office.url)
    queue(settings, sqlite_url, dhaka=5)
    (tmp_path / "diffusion.toml").write_text(
        f'smtp_url = "{shared.url}"\nfrom_address = "partners@unesco.example.org"\n'
        f'[[senders]]\naudience = "field_office"\nkey = "dhaka"\nname = "UNESCO Dhaka Office"\n'
        f'address = "{DHAKA["address"]}"\nrelay = "{office.url}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("DIFFUSION_HOME", str(tmp_path))
    monkeypatch.setenv("DIFFUSION_SECRET_KEY", "test-secret-key-for-signing-links")
    monkeypatch.setenv("DIFFUSION_ALLOW_TEST_SETTINGS", "true")

    result = CliRunner().invoke(cli, ["--database-url", sqlite_url, "send", "--period", "2026-11"])

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"the relay {name(office)} of a [[senders]] entry kept failing" in result.output
    assert "its 5 messages stay queued for the next send" in result.output
    assert len(shared.received) == 4


def test_a_bounce_of_an_office_message_names_its_recipient(
    tmp_path: Path, sqlite_url: str, two: tuple[RecordingServer, RecordingServer]
) -> None:
    shared, office = two
    settings = configured(tmp_path, sqlite_url, shared.url, office.url)
    queue(settings, sqlite_url)
    engine = db.make_engine(sqlite_url)
    send_pending(engine, settings, now=NOW)
    victim = next(r for r in office.received if r.rcpt_tos == ("dhaka1@example.org",))
    box = mailbox.Maildir(tmp_path / "returns", create=True)
    box.add(
        f"Return-Path: <>\r\nDelivered-To: {victim.mail_from}\r\nTo: {victim.mail_from}\r\n"
        "From: Gateway <gw@legacy.example.net>\r\nSubject: Notification\r\n"
        "Message-ID: <gw.1@legacy.example.net>\r\n\r\nMSG REJ. 77.\r\n".encode()
    )

    report = process_bounces(engine, settings, now=NOW, path=tmp_path / "returns")

    assert len(report.lines) == 1
    assert report.lines[0].split(": ", 1)[1].startswith("soft for dhaka1@example.org (by token)")
    engine.dispose()


@pytest.mark.parametrize(
    ("entry", "key", "reason"),
    [
        ({**DHAKA, "audience": "office"}, "senders.0.audience", "unknown audience 'office'"),
        ({**DHAKA, "address": "dhaka"}, "senders.0.address", "'dhaka' is not an email address"),
        ({**DHAKA, "reply_to": "a@b@c"}, "senders.0.reply_to", "is not an email address"),
        ({**DHAKA, "relay": "http://relay"}, "senders.0.relay", "scheme must be smtp://"),
        (
            {**DHAKA, "relay": "smtp://dhaka:secret@relay:587"},
            "senders.0.relay",
            "set the variable DIFFUSION_SENDER_PASSWORD_FIELD_OFFICE_DHAKA",
        ),
        ({**DHAKA, "password": "x"}, "senders.0", "a secret never goes in the file"),
        ({**DHAKA, "name": {"de": "Büro"}}, "senders.0.name", "'de' is not in languages"),
    ],
)
def test_a_bad_senders_entry_is_refused_at_load_naming_the_file_and_key(
    tmp_path: Path, entry: dict[str, Any], key: str, reason: str
) -> None:
    lines = ['smtp_url = "smtp://relay.example.org:587"', "[[senders]]"]
    for field, value in entry.items():
        if isinstance(value, dict):
            inner = ", ".join(f'{k} = "{v}"' for k, v in value.items())
            lines.append(f"{field} = {{{inner}}}")
        else:
            lines.append(f'{field} = "{value}"')
    path = tmp_path / "diffusion.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(ConfigError) as refused:
        load_settings(home=tmp_path)

    message = str(refused.value)
    assert message.startswith(f"{path}: {key}: ") and reason in message
    assert "\n" not in message


def test_an_office_relay_logs_in_with_its_own_password_never_the_shared_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIFFUSION_SMTP_PASSWORD", "shared-secret")
    settings = load_settings(
        home=tmp_path,
        smtp_url="smtp://hq@relay.example.org:587",
        senders=[{**DHAKA, "relay": "smtp://dhaka@relay.dhaka.example.org:587"}],
    )
    office = settings.senders[0]
    assert SMTPServer.from_url(office.relay or "", settings, office).password is None
    assert SMTPServer.from_url(settings.smtp.url or "", settings).password == "shared-secret"

    monkeypatch.setenv("DIFFUSION_SENDER_PASSWORD_FIELD_OFFICE_DHAKA", "office-secret")
    settings = load_settings(
        home=tmp_path, senders=settings.model_dump()["senders"], smtp_url=settings.smtp.url
    )
    office = settings.senders[0]
    server = SMTPServer.from_url(office.relay or "", settings, office)
    assert (server.username, server.password) == ("dhaka", "office-secret")
