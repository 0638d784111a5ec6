"""Bounces: real notices of many mail systems are recognised, scored and counted once."""

import itertools
import json
import mailbox
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db
from diffusion.bounces import verp
from diffusion.bounces.process import BounceReport, process_bounces
from diffusion.bounces.recognise import recognise
from diffusion.cli import cli
from diffusion.config import Settings
from diffusion.deliver.enqueue import enqueue, segment_subscribers
from diffusion.models import ConsentEvent, OutboxMessage, Person
from diffusion.subscriptions import add_subscriber
from tests.people import RULES
from tests.smtpserver import make_edition, make_subscribers

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "bounces"
REPORT_NUMBERS = itertools.count(1)  # each report has its own Message-ID, as MTAs write them

# file -> (whom it is about, what it is, the status it leaves them in)
NOTICES = {
    # Permanent failures of many mail systems: the person is bounced at once.
    "postfix-fr-user-unknown.eml": ("camille.durand@example.fr", "hard", "bounced"),
    "exim-no-such-user.eml": ("amadou.diallo@sahel-ngo.example.org", "hard", "bounced"),
    "qmail-mailbox-gone.eml": ("priya.raman@ngo-asia.example.org", "hard", "bounced"),
    "sendmail-host-unknown.eml": ("j.okafor@defunct-ngo.example.ng", "hard", "bounced"),
    "exchange-de-recipient-not-found.eml": (
        "klaus.weber@kulturstiftung.example.de",
        "hard",
        "bounced",
    ),
    "exchange-legacy-did-not-reach.eml": ("aroha.ngata@oceania-ngo.example.org", "hard", "bounced"),
    "smtpsvc-transcript.eml": ("marta.silva@heritage.example.org", "hard", "bounced"),
    "groupwise-undeliverable.eml": (
        "fatou.sow@gw.ministere-education.example.sn",
        "hard",
        "bounced",
    ),
    "yahoo-no-such-user.eml": ("elena.petrova@yahoo.com", "hard", "bounced"),
    "aol-screen-name.eml": ("bobmarleyfan1962@aol.com", "hard", "bounced"),
    "gmail-address-not-found.eml": ("li.wei.heritage@gmail.com", "hard", "bounced"),
    "japanese-iso2022jp-dsn.eml": ("yuki.tanaka@bunka-ngo.example.jp", "hard", "bounced"),
    "yandex-ru-koi8r.eml": ("olga.smirnova@yandex.ru", "hard", "bounced"),
    "domino-base64-dsn.eml": ("pierre.favre@ngo-alliance.example.ch", "hard", "bounced"),
    "nested-forwarded-dsn.eml": ("joao.pereira@final-hop.example.br", "hard", "bounced"),
    # A failure after retries (mailbox full): one soft bounce, under the limit.
    "postfix-mailbox-full.eml": ("wanjiru.kamau@scouts.example.ke", "soft", "active"),
    # Still trying: never marks anyone.
    "postfix-delayed.eml": ("tomas.novak@ngo-relay.example.net", "delay", "active"),
    "exim-delay-warning.eml": ("lucia.quispe@andesnet.example.pe", "delay", "active"),
    "gmail-delay.eml": ("ahmed.mansour@ngo-mena.example.org", "delay", "active"),
    # Vacation notices and replies, even at the VERP address: never counted.
    "autoreply-vacation-rfc3834.eml": ("sofia.rossi@ngo-italia.example.it", "auto_reply", "active"),
    "autoreply-exchange-fr.eml": ("rene.lefevre@commission-nat.example.fr", "auto_reply", "active"),
    "reply-from-reader.eml": ("dina.saleh@ngo-mena.example.org", "not_bounce", "active"),
    # A message naming a subscriber in its text is no bounce: nothing is guessed from it.
    "mentions-an-address.eml": ("dina.saleh@ngo-mena.example.org", "", "active"),
    # ARF complaints: by our signed Return-Path, or by our Message-ID when the rest is redacted.
    "arf-verp-redacted.eml": ("hana.kim@ngo-korea.example.kr", "complaint", "complained"),
    "arf-message-id-only.eml": ("karin.berg@webmail.example.net", "complaint", "complained"),
    # No parser knows this one: its VERP address alone says who; a soft bounce.
    "unknown-format-verp.eml": ("ines.garcia@ngo-latam.example.org", "soft", "active"),
}
MAIL_SYSTEMS = {name.split("-")[0] for name, (_, kind, _) in NOTICES.items() if kind == "hard"}


def mailed(engine: Engine, settings: Settings, addresses: list[str]) -> dict[str, OutboxMessage]:
    """Subscribers sent this month's edition: their outbox rows, by address."""
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        people = [
            add_subscriber(session, email=a, audience="liaison_committee", now=NOW, rules=RULES)
            for a in addresses
        ]
        enqueue(session, edition, people, settings, now=NOW)
    with db.session_scope(engine) as session:
        rows = session.exec(select(OutboxMessage, Person.email).join(Person)).all()
        for row, _email in rows:
            row.state = "sent"
            session.add(row)
        return {email: row for row, email in rows}


def notice(name: str, settings: Settings, row: OutboxMessage | None) -> bytes:
    """A fixture with our signed addresses and Message-ID for the person it is about."""
    raw = (FIXTURES / name).read_bytes()
    if row is None:
        return raw
    secret = settings.signing_key()
    fills = {
        b"@@VERP@@": verp.bounce_address(settings, secret, row.subscriber_id, row.edition_id),
        b"@@UNSUBSCRIBE@@": verp.unsubscribe_address(settings, secret, row.subscriber_id),
        b"@@MESSAGE_ID@@": row.message_id or "",
    }
    for placeholder, value in fills.items():
        raw = raw.replace(placeholder, value.encode())
    return raw


def status_of(engine: Engine, email: str) -> Person:
    with db.session_scope(engine) as session:
        return session.exec(select(Person).where(Person.email == email)).one()


def dsn(recipient: str, status: str, action: str, message_id: str | None = None) -> bytes:
    """A minimal delivery status notification as Postfix writes it."""
    return (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"Message-ID: <{next(REPORT_NUMBERS)}.bounce@mx.example.net>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
        "\r\n--B1\r\nContent-Type: text/plain\r\n\r\nCould not be delivered.\r\n"
        "\r\n--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "\r\n--B1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + (f"Message-ID: {message_id}\r\n" if message_id else "")
        + f"To: {recipient}\r\n\r\n--B1--\r\n"
    ).encode()


def test_the_fixtures_cover_a_dozen_mail_systems() -> None:
    assert len(MAIL_SYSTEMS) >= 12, sorted(MAIL_SYSTEMS)
    assert {path.name for path in FIXTURES.glob("*.eml")} == set(NOTICES)


@pytest.mark.parametrize("name", sorted(NOTICES))
def test_each_notice_is_recognised_for_what_it_is(name: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, secret_key="s" * 40)
    address, kind, _ = NOTICES[name]
    row = OutboxMessage(
        id=1, edition_id=3, subscriber_id=7, message_id="<n.3.7@diffusion.example.org>"
    )
    message = message_from_bytes(notice(name, settings, row), policy=policy.compat32)
    recognised = recognise(message, settings, settings.signing_key())
    kinds = [event.kind for event in recognised.events]
    assert kinds == ([kind] if kind else []), (kinds, recognised.skipped)
    for event in recognised.events:
        # Who: a verified token, our Message-ID, or the report's own recipient field.
        assert (
            event.subscriber_id == 7
            or event.message_id == row.message_id
            or (event.address == address)
        ), event


def test_notices_from_every_mail_system_mark_whom_they_name(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    addresses = sorted({address for address, _, _ in NOTICES.values()})
    rows = mailed(engine, settings, addresses)
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    for name, (address, _, _) in NOTICES.items():
        box.add(notice(name, settings, rows[address]))

    report = process_bounces(engine, settings, now=NOW, path=tmp_path / "bounces")

    for name, (address, _, status) in NOTICES.items():
        assert status_of(engine, address).status == status, (name, report.lines)
    expected = {kind for _, kind, _ in NOTICES.values() if kind}
    assert {k for k, n in report.kinds.items() if n} == expected
    assert report.count("hard") == sum(1 for _, k, _ in NOTICES.values() if k == "hard")
    assert report.unmatched == 0
    # The Gmail failure carried our Message-ID: that outbox row failed for good.
    with db.session_scope(engine) as session:
        failed = session.get(OutboxMessage, rows["li.wei.heritage@gmail.com"].id)
        assert failed is not None and failed.state == "failed_permanent"
        assert "5.1.1" in (failed.last_error or "")
    # The quoted List-Unsubscribe address of a returned message unsubscribes nobody.
    assert "unsubscribed" not in report.marked
    # Each change went through the subscriptions module, which says why and from where.
    with db.session_scope(engine) as session:
        events = {
            (email, e.action, e.from_status, e.to_status, e.origin): e.detail
            for e, email in session.exec(
                select(ConsentEvent, Person.email)
                .join(Person, col(Person.id) == ConsentEvent.person_id)
                .where(col(ConsentEvent.origin).in_(("bounce", "complaint")))
            ).all()
        }
    assert set(events) == {
        (address, "bounce", "active", "bounced", "bounce")
        for address, kind, _ in NOTICES.values()
        if kind == "hard"
    } | {
        ("hana.kim@ngo-korea.example.kr", "complaint", "active", "complained", "complaint"),
        ("karin.berg@webmail.example.net", "complaint", "active", "complained", "complaint"),
    }
    assert "5.1.1" in events[("li.wei.heritage@gmail.com", "bounce", "active", "bounced", "bounce")]


def test_a_notice_naming_someone_we_never_mailed_changes_nothing(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    with db.session_scope(engine) as session:
        add_subscriber(
            session,
            email="yuki.tanaka@bunka-ngo.example.jp",
            audience="liaison_committee",
            now=NOW,
            rules=RULES,
        )
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(notice("japanese-iso2022jp-dsn.eml", settings, None))
    report = process_bounces(engine, settings, now=NOW, path=tmp_path / "bounces")
    assert report.unmatched == 1
    assert status_of(engine, "yuki.tanaka@bunka-ngo.example.jp").status == "active"


def test_soft_bounces_mark_only_over_the_limit_and_are_forgiven_after_a_quiet_period(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rows = mailed(engine, settings, ["full@example.org", "again@example.org"])
    limit = settings.bounces.soft_limit

    def bounce(address: str, at: datetime) -> BounceReport:
        path = tmp_path / f"box-{next(REPORT_NUMBERS)}"
        box = mailbox.Maildir(path, create=True)
        box.add(dsn(address, "4.2.2", "failed", rows[address].message_id))
        return process_bounces(engine, settings, now=at, path=path)

    day = timedelta(days=1)
    for n in range(limit - 1):
        bounce("full@example.org", NOW + n * day)
    # A second notice the same day is the same bounce.
    bounce("full@example.org", NOW + (limit - 2) * day + timedelta(hours=2))
    assert (
        status_of(engine, "full@example.org").soft_bounces,
        status_of(engine, "full@example.org").status,
    ) == (limit - 1, "active")
    report = bounce("full@example.org", NOW + (limit - 1) * day)
    assert report.bounced == ["full@example.org"]
    full = status_of(engine, "full@example.org")
    # The bounce that reached the limit is counted once, not again by the transition.
    assert (full.status, full.soft_bounces) == ("bounced", limit)

    # Quiet for longer than bounce_quiet_days: the old bounces are forgiven.
    for n in range(limit - 1):
        bounce("again@example.org", NOW + n * day)
    later = NOW + (limit - 2) * day + timedelta(days=settings.bounces.quiet_days + 1)
    bounce("again@example.org", later)
    again = status_of(engine, "again@example.org")
    assert (again.soft_bounces, again.status) == (1, "active")


def test_delays_never_mark_however_many(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    rows = mailed(engine, settings, ["slow@example.org"])
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    for _ in range(settings.bounces.soft_limit + 2):
        box.add(dsn("slow@example.org", "4.4.1", "delayed", rows["slow@example.org"].message_id))
    report = process_bounces(engine, settings, now=NOW, path=tmp_path / "bounces")
    assert report.count("delay") == settings.bounces.soft_limit + 2
    slow = status_of(engine, "slow@example.org")
    assert (slow.status, slow.soft_bounces) == ("active", 0)


def test_a_complained_or_bounced_person_is_not_imported_or_sent_again(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rows = mailed(engine, settings, ["hana.kim@ngo-korea.example.kr", "gone@example.org"])
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(notice("arf-verp-redacted.eml", settings, rows["hana.kim@ngo-korea.example.kr"]))
    box.add(dsn("gone@example.org", "5.1.1", "failed", rows["gone@example.org"].message_id))
    process_bounces(engine, settings, now=NOW, path=tmp_path / "bounces")
    assert status_of(engine, "hana.kim@ngo-korea.example.kr").status == "complained"

    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,name,language,audience,key\nhana.kim@ngo-korea.example.kr,Hana,en,liaison_committee,\n"
        "gone@example.org,Gone,en,liaison_committee,\nnew@example.org,New,en,liaison_committee,\n"
    )
    result = CliRunner().invoke(
        cli,
        ["--home", str(settings.home), "--database-url", settings.database,
         "subscribers", "import", str(csv)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert status_of(engine, "hana.kim@ngo-korea.example.kr").status == "complained"
    assert status_of(engine, "gone@example.org").status == "bounced"
    with db.session_scope(engine) as session:
        edition = make_edition(session, period="2026-12")
        enqueue(session, edition, segment_subscribers(session, edition), settings, now=NOW)
        queued = session.exec(
            select(Person.email).join(OutboxMessage).where(OutboxMessage.edition_id == edition.id)
        ).all()
    assert queued == ["new@example.org"]
    base = ["--home", str(settings.home), "--database-url", settings.database]
    status = CliRunner().invoke(cli, [*base, "status", "--format", "table"])
    assert status.exit_code == 0, status.output
    assert "1 bounced, 1 complained (spam reports), 0 unsubscribed" in status.output
    counts = json.loads(CliRunner().invoke(cli, [*base, "status", "--format", "json"]).output)
    assert (counts["bounced"], counts["complained"], counts["unsubscribed"]) == (1, 1, 0)


def test_bounces_process_verbose_says_what_each_report_was(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rows = mailed(engine, settings, ["reader1@example.org", "sofia.rossi@ngo-italia.example.it"])
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    box.add(dsn("reader1@example.org", "5.7.1", "failed", rows["reader1@example.org"].message_id))
    box.add(
        notice(
            "autoreply-vacation-rfc3834.eml", settings, rows["sofia.rossi@ngo-italia.example.it"]
        )
    )
    box.add(b"From: someone@example.org\r\nSubject: hello\r\n\r\nJust saying hello.\r\n")
    box.flush()
    args = ["--home", str(settings.home), "--database-url", settings.database, "bounces",
            "process", "--verbose", str(tmp_path / "bounces.mbox")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "1 hard" in output and "marked: 1 bounced" in output
    assert "hard for reader1@example.org (by message-id) via dsn: dsn failed 5.7.1" in output
    assert "skipped: auto-reply (Auto-Submitted: auto-replied)" in output
    assert "skipped: not a delivery report" in output
    assert status_of(engine, "reader1@example.org").status == "bounced"

    # An mbox keeps what was read: a second run counts nothing again.
    result = CliRunner().invoke(cli, args)
    assert "0 reports (1 read before, skipped)" in " ".join(result.output.split())


def test_bounces_process_names_a_bad_path(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert CliRunner().invoke(cli, ["--home", str(tmp_path), "init"]).exit_code == 0
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "bounces", "process", "plain"])
    assert "plain: a folder but not a maildir" in str(result.exception)


def test_two_runs_at_once_count_each_report_once(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        enqueue(session, edition, make_subscribers(session, 20), settings, now=NOW)
    with db.session_scope(engine) as session:
        rows = {
            e: r for r, e in session.exec(select(OutboxMessage, Person.email).join(Person)).all()
        }
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    for address, row in rows.items():
        box.add(dsn(address, "4.2.2", "failed", row.message_id))
    box.add(b"From: someone@example.org\r\nSubject: hello\r\n\r\nHello.\r\n")
    box.flush()
    reports: list[BounceReport] = []

    def run() -> None:
        reports.append(process_bounces(engine, settings, now=NOW, path=tmp_path / "bounces.mbox"))

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    assert [r.reports + r.already_read for r in reports] == [20, 20]
    assert sum(r.reports for r in reports) == sum(r.count("soft") for r in reports) == 20
    soft = {address: status_of(engine, address).soft_bounces for address in rows}
    assert soft == dict.fromkeys(rows, 1)
