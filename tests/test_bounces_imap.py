"""`bounces process imaps://...` against a real IMAP server (Dovecot): each report once."""

import imaplib
import ssl
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.cli import cli
from diffusion.config import Settings
from diffusion.errors import DeliveryError
from diffusion.models import Person
from tests.imapserver import PASSWORD, USER, ImapServer, imap_server
from tests.test_bounces import dsn, mailed, notice

__all__ = ["imap_server"]
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def append(server: ImapServer, *messages: bytes) -> None:
    """Deliver messages into the mailbox the way a client would, over IMAP."""
    imap = imaplib.IMAP4_SSL(server.host, server.port, ssl_context=ssl.create_default_context())
    imap.login(USER, PASSWORD)
    for message in messages:
        status, _ = imap.append("INBOX", "", imaplib.Time2Internaldate(NOW), message)
        assert status == "OK"
    imap.logout()


def flags(server: ImapServer, folder: str = "INBOX") -> list[str]:
    imap = imaplib.IMAP4_SSL(server.host, server.port, ssl_context=ssl.create_default_context())
    imap.login(USER, PASSWORD)
    imap.select(folder, readonly=True)
    _, data = imap.fetch("1:*", "(FLAGS)") if imap.search(None, "ALL")[1][0] else ("OK", [])
    imap.logout()
    return [item.decode() for item in data if isinstance(item, bytes)]


def status(engine: Engine, email: str) -> str:
    with db.session_scope(engine) as session:
        return session.exec(select(Person.status).where(Person.email == email)).one()


def run(settings: Settings, source: str, env: dict[str, str]) -> str:
    result = CliRunner().invoke(
        cli,
        ["--home", str(settings.home), "--database-url", settings.database,
         "bounces", "process", "--verbose", source],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    return " ".join(result.output.split())


def test_an_imap_mailbox_is_read_once_across_runs(
    engine: Engine, settings: Settings, imap_server: ImapServer, tmp_path: Path
) -> None:
    rows = mailed(engine, settings, ["gone@example.org", "full@example.org",
                                     "camille.durand@example.fr"])  # fmt: skip
    append(
        imap_server,
        dsn("gone@example.org", "5.1.1", "failed", rows["gone@example.org"].message_id),
        dsn("full@example.org", "4.2.2", "failed", rows["full@example.org"].message_id),
        notice("postfix-fr-user-unknown.eml", settings, rows["camille.durand@example.fr"]),
    )
    env = {"DIFFUSION_BOUNCE_IMAP_PASSWORD": PASSWORD}
    first = run(settings, imap_server.url, env)
    assert "3 reports" in first and "2 hard and 1 soft" in first, first
    assert status(engine, "gone@example.org") == "bounced"
    assert status(engine, "camille.durand@example.fr") == "bounced"
    assert all("\\Seen" in f for f in flags(imap_server)), flags(imap_server)

    # A new report arrives; the next run reads only it.
    append(
        imap_server, dsn("full@example.org", "4.2.2", "failed", rows["full@example.org"].message_id)
    )
    second = run(settings, imap_server.url, env)
    assert "1 reports" in second and "0 hard and 1 soft" in second, second
    # Someone (or a client) marks everything unread again: the report keys still count each once.
    imap = imaplib.IMAP4_SSL(
        imap_server.host, imap_server.port, ssl_context=ssl.create_default_context()
    )
    imap.login(USER, PASSWORD)
    imap.select("INBOX")
    imap.store("1:*", "-FLAGS", "(\\Seen)")
    imap.logout()
    third = run(settings, imap_server.url, env)
    assert "0 reports (4 read before, skipped)" in third, third
    with db.session_scope(engine) as session:
        full = session.exec(select(Person).where(Person.email == "full@example.org")).one()
        assert full.soft_bounces == 1  # two soft bounces the same day count once


def test_read_reports_can_be_moved_and_a_wrong_password_is_one_clear_line(
    engine: Engine, settings: Settings, imap_server: ImapServer
) -> None:
    rows = mailed(engine, settings, ["gone@example.org"])
    append(
        imap_server, dsn("gone@example.org", "5.1.1", "failed", rows["gone@example.org"].message_id)
    )
    env = {
        "DIFFUSION_BOUNCE_IMAP_PASSWORD": PASSWORD,
        "DIFFUSION_BOUNCE_IMAP_DONE_FOLDER": "Processed",
    }
    assert "1 hard" in run(settings, imap_server.url, env)
    assert flags(imap_server) == []
    assert len(flags(imap_server, "Processed")) == 1

    result = CliRunner().invoke(
        cli,
        ["--home", str(settings.home), "--database-url", settings.database,
         "bounces", "process", imap_server.url],
        env={"DIFFUSION_BOUNCE_IMAP_PASSWORD": "wrong"},
    )  # fmt: skip
    assert isinstance(result.exception, DeliveryError)
    assert str(result.exception).startswith(f"imaps://{USER}@127.0.0.1/INBOX: ")
    assert "AUTHENTICATIONFAILED" in str(result.exception)
