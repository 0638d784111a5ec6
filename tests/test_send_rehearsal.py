"""`send --dry-run` and `send --test-to` are rehearsals: the database is left as it was."""

from typing import Any

import pytest
from click.testing import CliRunner
from digest_dataset import NOW, store
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.cli import cli
from diffusion.config import Settings
from diffusion.deliver import send_pending
from diffusion.models import Edition, OutboxMessage
from tests.people import enrol
from tests.smtpserver import RecordingServer, smtp_server

__all__ = ["smtp_server"]


def snapshot(engine: Engine) -> tuple[list[Any], list[Any]]:
    with db.session_scope(engine) as session:
        editions = [(e.id, e.status) for e in session.exec(select(Edition))]
        rows = [(r.id, r.state) for r in session.exec(select(OutboxMessage))]
    return editions, rows


@pytest.mark.parametrize("rehearsal", [["--dry-run"], ["--test-to", "editor@example.org"]])
def test_a_rehearsal_builds_approves_and_queues_nothing(
    engine: Engine,
    settings: Settings,
    smtp_server: RecordingServer,
    monkeypatch: pytest.MonkeyPatch,
    rehearsal: list[str],
) -> None:
    store(engine)
    with db.session_scope(engine) as session:
        enrol(session, email="a@example.org", audience="ngo", key="ifla")
    monkeypatch.setenv("DIFFUSION_HOME", str(settings.home))
    monkeypatch.setenv("DIFFUSION_SECRET_KEY", "test-secret-key-for-signing-links")
    monkeypatch.setenv("DIFFUSION_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("DIFFUSION_ALLOW_TEST_SETTINGS", "true")
    before = snapshot(engine)

    result = CliRunner().invoke(
        cli, ["--database-url", settings.database, "send", "--period", "2026-11", *rehearsal]
    )

    assert result.exit_code == 0, result.output
    assert snapshot(engine) == before == ([], [])
    if "--test-to" in rehearsal:
        assert "edition 1 (ngo:ifla|en|monthly): sent" in result.output
        assert smtp_server.deliveries() == {"editor@example.org": 1}
    else:
        assert "nothing was approved or queued" in result.output
        # In a pipe, tab-separated: edition, period, recipients (one), already sent.
        assert "1\t2026-11\t1\t0\tngo:ifla|en|monthly\t" in result.output
        assert smtp_server.received == []
    # What the scheduler's send job does next: there is nothing approved for it to send.
    config = settings.replace(smtp_url=smtp_server.url)
    summary = send_pending(engine, config, now=NOW)
    assert summary.sent == 0
    assert "a@example.org" not in smtp_server.deliveries()
