"""Bounces: RFC 3464 reports read from a maildir and an mbox mark rows and subscribers."""

import itertools
import mailbox
import threading
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.cli import cli
from diffusion.cli import commands as _commands  # noqa: F401  (registers the commands)
from diffusion.config import Settings
from diffusion.deliver import outbox
from diffusion.deliver.bounces import BounceReport, parse_dsn, process_bounces
from diffusion.models import OutboxMessage, Person
from tests.smtpserver import make_edition, make_subscribers

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
REPORT_NUMBERS = itertools.count(1)  # each report has its own Message-ID, as MTAs write them


def dsn(
    recipient: str,
    status: str,
    action: str,
    message_id: str | None = None,
    *,
    headers_only: bool = False,
    report_id: bool = True,
) -> bytes:
    """A delivery status notification as Postfix writes it."""
    original = (
        "From: NGO-UNESCO Partnership Diffusion <newsletter@diffusion.example.org>\r\n"
        f"To: {recipient}\r\n"
        + (f"Message-ID: {message_id}\r\n" if message_id else "")
        + "Subject: NGO partners' newsletter, November 2026\r\n"
    )
    returned = (
        "Content-Type: text/rfc822-headers\r\n\r\n" + original
        if headers_only
        else "Content-Type: message/rfc822\r\n\r\n" + original + "\r\nHello\r\n"
    )
    return (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        + (f"Message-ID: <{next(REPORT_NUMBERS)}.bounce@mx.example.net>\r\n" if report_id else "")
        + "To: newsletter@diffusion.example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
        "\r\n--B1\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "This is the mail system at host mx.example.net. Your message could not be delivered.\r\n"
        "\r\n--B1\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n"
        "Arrival-Date: Tue, 1 Dec 2026 09:00:00 +0100\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} mailbox problem\r\n"
        "\r\n--B1\r\n" + returned + "\r\n--B1--\r\n"
    ).encode()


def sent_to(engine: Engine, settings: Settings, count: int) -> dict[str, OutboxMessage]:
    with db.session_scope(engine) as session:
        edition = make_edition(session)
        people = make_subscribers(session, count)
        outbox.enqueue(session, edition, people, settings, now=NOW)
    with db.session_scope(engine) as session:
        rows = session.exec(select(OutboxMessage, Person.email).join(Person)).all()
        for row, _email in rows:
            assert row.message_id is not None  # decided when queued
            row.state = "sent"
            session.add(row)
        return {email: row for row, email in rows}


def subscriber(engine: Engine, email: str) -> Person:
    with db.session_scope(engine) as session:
        found = session.exec(select(Person).where(Person.email == email)).one()
        return found


def test_a_report_is_parsed_per_recipient() -> None:
    from email import message_from_bytes

    [bounce] = parse_dsn(message_from_bytes(dsn("a@example.org", "5.1.1", "failed", "<m@x>")))
    assert (bounce.recipient, bounce.status, bounce.action, bounce.message_id) == (
        "a@example.org",
        "5.1.1",
        "failed",
        "<m@x>",
    )
    assert bounce.hard and not bounce.soft
    assert "550 5.1.1" in bounce.diagnostic


def test_bounces_from_a_maildir_mark_rows_and_subscribers(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rows = sent_to(engine, settings, 4)
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    hard = rows["reader0@example.org"]
    box.add(dsn("reader0@example.org", "5.1.1", "failed", hard.message_id))
    # Matched by the original recipient when the report does not carry our Message-ID.
    box.add(dsn("reader1@example.org", "5.2.1", "failed", headers_only=True))
    for _ in range(settings.soft_bounce_limit):
        box.add(
            dsn("reader2@example.org", "4.2.2", "delayed", rows["reader2@example.org"].message_id)
        )
    box.add(dsn("reader3@example.org", "4.4.1", "delayed"))
    box.add(dsn("stranger@elsewhere.org", "5.1.1", "failed"))
    box.add(b"From: someone@example.org\r\nSubject: out of office\r\n\r\nI am away.\r\n")

    report = process_bounces(engine, settings, now=NOW, path=tmp_path / "bounces")

    assert (report.reports, report.hard, report.soft, report.unmatched) == (
        4 + settings.soft_bounce_limit,
        2,
        settings.soft_bounce_limit + 1,
        1,
    )
    assert sorted(report.bounced) == [f"reader{n}@example.org" for n in range(3)]
    assert len(report.problems) == 1 and "not a delivery status notification" in report.problems[0]
    with db.session_scope(engine) as session:
        row = session.get(OutboxMessage, hard.id)
        assert row is not None and row.state == "failed_permanent"
        assert "5.1.1" in (row.last_error or "")
    for n in range(3):
        gone = subscriber(engine, f"reader{n}@example.org")
        assert gone.status == "bounced" and gone.status_changed_at == NOW
    kept = subscriber(engine, "reader3@example.org")
    assert (kept.status, kept.soft_bounces) == ("active", 1)

    again = process_bounces(engine, settings, now=NOW, path=tmp_path / "bounces")
    assert again.reports == 0  # what was read is not counted twice
    assert subscriber(engine, "reader3@example.org").soft_bounces == 1

    # A bounced subscriber is no longer mailed: the next edition leaves them out.
    with db.session_scope(engine) as session:
        edition = make_edition(session, period="2026-12")
        queued = outbox.enqueue(
            session, edition, outbox.segment_subscribers(session, edition), settings, now=NOW
        )
    assert queued == 1


def test_bounces_process_reads_an_mbox_from_the_command_line(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rows = sent_to(engine, settings, 2)
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    box.add(dsn("reader1@example.org", "5.7.1", "failed", rows["reader1@example.org"].message_id))
    box.flush()
    result = CliRunner().invoke(
        cli,
        ["--home", str(settings.home), "--database-url", settings.database, "bounces", "process",
         str(tmp_path / "bounces.mbox")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 hard" in result.output and "1 subscribers marked bounced" in result.output
    assert subscriber(engine, "reader1@example.org").status == "bounced"
    assert subscriber(engine, "reader0@example.org").status == "active"

    # An mbox keeps what was read: run again with one new soft bounce, and again.
    box.add(dsn("reader0@example.org", "4.2.2", "delayed", rows["reader0@example.org"].message_id))
    box.flush()
    for _ in range(2):
        result = CliRunner().invoke(
            cli,
            ["--home", str(settings.home), "--database-url", settings.database, "bounces",
             "process", str(tmp_path / "bounces.mbox")],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    assert "0 reports (2 read before, skipped)" in " ".join(result.output.split())
    assert subscriber(engine, "reader0@example.org").soft_bounces == 1


def test_bounces_process_names_a_bad_path(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert CliRunner().invoke(cli, ["--home", str(tmp_path), "init"]).exit_code == 0
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "bounces", "process", "plain"])
    assert "plain: a folder but not a maildir" in str(result.exception)


def test_two_runs_at_once_count_each_report_once(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rows = sent_to(engine, settings, 20)
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    for address, row in rows.items():
        box.add(dsn(address, "4.2.2", "delayed", row.message_id))
    # A report without a Message-ID is known by its bytes: the same one twice counts once.
    twice = dsn("reader0@example.org", "4.4.1", "delayed", report_id=False)
    box.add(twice)
    box.add(twice)
    box.add(b"From: someone@example.org\r\nSubject: out of office\r\n\r\nAway.\r\n")
    box.flush()
    reports: list[BounceReport] = []

    def run() -> None:
        reports.append(process_bounces(engine, settings, now=NOW, path=tmp_path / "bounces.mbox"))

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    assert [r.reports + r.already_read + len(r.problems) for r in reports] == [23, 23]
    assert sum(r.reports for r in reports) == sum(r.soft for r in reports) == 21
    assert sum(len(r.problems) for r in reports) == 1  # the out-of-office, said once
    soft = {address: subscriber(engine, address).soft_bounces for address in rows}
    assert soft == {address: 2 if address == "reader0@example.org" else 1 for address in rows}
