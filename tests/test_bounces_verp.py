"""VERP and the mailto: List-Unsubscribe: what comes back to a signed address names its person."""

import mailbox
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.bounces import verp
from diffusion.bounces.process import process_bounces
from diffusion.config import Settings
from diffusion.deliver import send_pending
from diffusion.deliver.enqueue import enqueue
from diffusion.models import ConsentEvent, Person, Subscription
from tests.people import enrol
from tests.smtpserver import RecordingServer, make_edition, make_subscribers, smtp_server

__all__ = ["smtp_server"]
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def sent(engine: Engine, settings: Settings, server: RecordingServer, count: int) -> None:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        enqueue(session, edition, make_subscribers(session, count), settings, now=NOW)
    config = settings.replace(smtp_url=server.url)
    summary = send_pending(engine, config, now=NOW)
    assert summary.sent == count


def statuses(engine: Engine) -> dict[str, str]:
    with db.session_scope(engine) as session:
        return {s.email: s.status for s in session.exec(select(Person)).all()}


def test_tokens_are_short_verified_and_bound_to_their_purpose() -> None:
    secret = "k" * 43
    settings = Settings(secret_key=secret)
    address = verp.bounce_address(settings, secret, 987654321, 123456)
    assert len(address.partition("@")[0]) <= 64
    claim = verp.claim_of_address(settings, secret, address)
    assert claim == verp.Claim(verp.BOUNCE_PURPOSE, 987654321, 123456)
    # Relays that fold case return the same token.
    assert verp.claim_of_address(settings, secret, address.upper()) == claim
    local, _, domain = address.partition("@")
    other = "0" if local[-1] != "0" else "1"
    for forged in (
        local.replace("987654321", "987654322") + "@" + domain,  # another person
        local.replace("123456", "123457") + "@" + domain,  # another edition
        local[:-1] + other + "@" + domain,  # a mangled signature
        local[:-3] + "@" + domain,  # a cut one
        local + "@elsewhere.example.org",  # someone else's domain
    ):
        assert verp.claim_of_address(settings, secret, forged) is None, forged
    assert verp.claim_of_address(settings, "another key" * 4, address) is None
    # After a key rotation, mail returned to an address made with the older key still counts.
    assert verp.claim_of_address(settings, ("n" * 43, secret), address) == claim
    assert verp.claim_of_address(settings, ("n" * 43, "o" * 43), address) is None
    # A bounce token is no unsubscribe token.
    token = local.partition("+")[2]
    assert verp.read(secret, verp.UNSUBSCRIBE_PURPOSE, token) is None
    unsubscribe = verp.unsubscribe_address(settings, secret, 42)
    assert verp.claim_of_address(settings, secret, unsubscribe) == verp.Claim(
        verp.UNSUBSCRIBE_PURPOSE, 42
    )


def test_the_envelope_sender_names_each_recipient_and_the_bounce_domain_is_configurable(
    engine: Engine, settings: Settings, smtp_server: RecordingServer
) -> None:
    settings = settings.replace(bounce_domain="returns.diffusion.example.org")
    sent(engine, settings, smtp_server, 3)
    secret = settings.signing_key()
    seen = set()
    for received in smtp_server.received:
        local, _, domain = received.mail_from.partition("@")
        assert domain == "returns.diffusion.example.org" and local.startswith("bounces+")
        claim = verp.claim_of_address(settings, secret, received.mail_from)
        assert claim is not None
        with db.session_scope(engine) as session:
            person = session.get(Person, claim.subscriber_id)
            assert person is not None and received.rcpt_tos == (person.email,)
        seen.add(claim.subscriber_id)
        # The From stays the newsletter's address: only the envelope changes.
        assert received.parsed()["From"].addresses[0].addr_spec == settings.from_address
    assert len(seen) == 3


def test_a_bounce_no_parser_knows_is_attributed_by_verp_alone(
    engine: Engine, settings: Settings, smtp_server: RecordingServer, tmp_path: Path
) -> None:
    sent(engine, settings, smtp_server, 3)
    victim = next(r for r in smtp_server.received if r.rcpt_tos == ("reader1@example.org",))
    # The receiving server returns it to its Return-Path in a format of its own, naming no one,
    # once a day: soft bounces by VERP alone, until the score reaches the limit.
    box = mailbox.Maildir(tmp_path / "returns", create=True)
    limit = settings.bounces.soft_limit
    for day in range(limit):
        box.add(
            f"Return-Path: <>\r\nDelivered-To: {victim.mail_from}\r\nTo: {victim.mail_from}\r\n"
            f"From: Gateway <gw@legacy.example.net>\r\nSubject: Notification {day}\r\n"
            f"Message-ID: <gw.{day}@legacy.example.net>\r\n\r\nMSG REJ. 77.\r\n".encode()
        )
        report = process_bounces(
            engine, settings, now=NOW + timedelta(days=day), path=tmp_path / "returns"
        )
        assert len(report.lines) == 1
        assert (
            report.lines[0]
            .split(": ", 1)[1]
            .startswith("soft for reader1@example.org (by token) via verp")
        )
        expected = "bounced" if day == limit - 1 else "active"
        assert statuses(engine)["reader1@example.org"] == expected
    assert statuses(engine)["reader0@example.org"] == "active"


def test_an_email_to_the_list_unsubscribe_address_unsubscribes_exactly_that_person(
    engine: Engine, settings: Settings, smtp_server: RecordingServer, tmp_path: Path
) -> None:
    sent(engine, settings, smtp_server, 3)
    message = smtp_server.messages_to("reader2@example.org")[0]
    header = str(message["List-Unsubscribe"])
    mailto = next(
        part.strip(" <>")[len("mailto:") :]
        for part in header.split(",")
        if part.strip(" <>").startswith("mailto:")
    )
    address = mailto.partition("?")[0]
    assert address.startswith("unsubscribe+") and address.endswith("@diffusion.example.org")
    with db.session_scope(engine) as session:
        reader2 = session.exec(select(Person).where(Person.email == "reader2@example.org")).one()
        enrol(session, reader2.email, "public", cadence="weekly", person=reader2)
        reader2_id = reader2.id
    box = mailbox.Maildir(tmp_path / "incoming", create=True)
    # Whatever the subject or body: the address is the request (RFC 2369, RFC 8058).
    box.add(
        f"From: Someone <reader2@example.org>\r\nTo: {address}\r\nSubject: please keep me\r\n"
        "Message-ID: <u1@example.org>\r\n\r\nI like it, subscribe me to more!\r\n".encode()
    )
    # A forged or mangled token changes nothing.
    local, _, domain = address.partition("@")
    for n, forged in enumerate(
        (local.replace("+", "+9", 1), local[:-2] + "zz", local.partition("+")[0])
    ):
        box.add(
            f"From: x@example.org\r\nTo: {forged}@{domain}\r\nMessage-ID: <f{n}@example.org>\r\n"
            "Subject: unsubscribe\r\n\r\nunsubscribe\r\n".encode()
        )
    report = process_bounces(engine, settings, now=NOW, path=tmp_path / "incoming")
    assert report.marked == {"unsubscribed": ["reader2@example.org"]}
    assert statuses(engine) == {
        "reader0@example.org": "active",
        "reader1@example.org": "active",
        "reader2@example.org": "unsubscribed",
    }
    # As the one-click link: the address leaves every subscription it held, the weekly one too,
    # and the consent record says it came by email.
    with db.session_scope(engine) as session:
        held = session.exec(
            select(Subscription.status).where(Subscription.person_id == reader2_id)
        ).all()
        events = session.exec(
            select(ConsentEvent.action, ConsentEvent.to_status, ConsentEvent.origin).where(
                ConsentEvent.person_id == reader2_id
            )
        ).all()
    assert held == ["left", "left"]
    assert sorted(events) == [("unsubscribe", "left", "email")] * 2 + [
        ("unsubscribe", "unsubscribed", "email")
    ]
    # The other recipients' messages carry their own addresses.
    mailtos = {
        found
        for received in smtp_server.received
        for found in re.findall(
            r"mailto:(unsubscribe\+[^?>]+)", str(received.parsed()["List-Unsubscribe"])
        )
    }
    assert len(mailtos) == 3
