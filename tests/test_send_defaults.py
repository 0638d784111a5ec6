"""Broken defaults are refused before real mail goes out; settings are checked at load."""

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffusion import db
from diffusion.cli import main
from diffusion.config import load_settings
from diffusion.errors import ConfigError
from tests.smtpserver import RecordingServer, make_edition, make_subscribers, smtp_server

__all__ = ["smtp_server"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("base_url", "not a url"),
        ("base_url", "ftp://diffusion.example.org"),
        ("from_address", "newsletter"),
        ("reply_to", "editor at example.org"),
        ("unsubscribe_mailto", "@example.org"),
        ("list_id", "partners list"),
        ("smtp_url", "smtp://"),
    ],
)
def test_a_malformed_url_or_address_fails_at_load_naming_its_key(
    tmp_path: Path, key: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: '{value}'|{key}: no host"):
        load_settings(home=tmp_path, **{key: value})


@dataclass
class Ran:
    exit_code: int
    output: str


def invoke(monkeypatch: pytest.MonkeyPatch, home: Path, url: str, *args: str, **env: str) -> Ran:
    """The real entry point (which turns errors into exit codes), as a shell would run it."""
    environment = {
        "DIFFUSION_HOME": str(home),
        "DIFFUSION_SECRET_KEY": "k-for-signing-links-0123456789ab",
        **env,
    }
    monkeypatch.setattr(sys, "argv", ["diffusion", "--database-url", url, *args])
    code = 0
    with CliRunner().isolation(env=environment) as (out, err, _):
        try:
            main()
        except SystemExit as stopped:
            code = int(stopped.code or 0)
    text = out.getvalue().decode() + err.getvalue().decode()
    return Ran(code, " ".join(text.split()))  # rich wraps long lines at the terminal width


def test_send_through_smtp_refuses_loopback_links_and_the_example_sender(
    tmp_path: Path, sqlite_url: str, smtp_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session:
        make_edition(session)
        make_subscribers(session, 2)
    relay = {"DIFFUSION_SMTP_URL": smtp_server.url}

    refused = invoke(monkeypatch, tmp_path, sqlite_url, "send", "--period", "2026-11", **relay)
    assert refused.exit_code == 2, refused.output
    assert "refusing to send through SMTP" in refused.output
    assert "base_url is http://127.0.0.1:8080, a loopback address" in refused.output
    assert "DIFFUSION_BASE_URL" in refused.output and "DIFFUSION_FROM_ADDRESS" in refused.output
    assert "Traceback" not in refused.output

    public = {"DIFFUSION_BASE_URL": "https://news.example.org", **relay}
    refused = invoke(monkeypatch, tmp_path, sqlite_url, "send", "--period", "2026-11", **public)
    assert refused.exit_code == 2 and "from_address is the example" in refused.output
    assert "loopback" not in refused.output
    assert smtp_server.received == []

    for command in (["serve", "--no-web"], ["jobs", "run", "send"]):
        refused = invoke(monkeypatch, tmp_path, sqlite_url, *command, **relay)
        assert refused.exit_code == 2, (command, refused.output)
        assert "refusing to send through SMTP" in refused.output

    ready = {**public, "DIFFUSION_FROM_ADDRESS": "news@unesco-partners.example.org"}
    sent = invoke(monkeypatch, tmp_path, sqlite_url, "send", "--period", "2026-11", **ready)
    assert sent.exit_code == 0, sent.output
    assert len(smtp_server.received) == 2


def test_the_maildir_needs_no_public_address(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session:
        make_edition(session)
        make_subscribers(session, 2)
    (tmp_path / "var" / "outbox").mkdir(parents=True)  # empty: no new/cur/tmp yet
    sent = invoke(monkeypatch, tmp_path, sqlite_url, "send", "--period", "2026-11")
    assert sent.exit_code == 0, sent.output
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == 2
