"""The SMTP transport: URL settings, STARTTLS, implicit TLS, login, and the rate limit."""

import ssl
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import select

from diffusion import db
from diffusion.config import Settings, load_settings
from diffusion.deliver import send_pending
from diffusion.deliver.transport import SMTPServer
from diffusion.models import OutboxMessage
from tests.smtpserver import RecordingServer, make_edition, make_subscribers

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_smtp_url_gives_host_port_tls_and_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = SMTPServer.from_settings(
        load_settings(home=tmp_path, smtp_url="smtps://news:p%40ss@mail.example.org")
    )
    assert (server.host, server.port, server.implicit_tls) == ("mail.example.org", 465, True)
    assert (server.username, server.password) == ("news", "p@ss")
    monkeypatch.setenv("DIFFUSION_SMTP_USERNAME", "relay")
    monkeypatch.setenv("DIFFUSION_SMTP_PASSWORD", "secret")
    server = SMTPServer.from_settings(load_settings(home=tmp_path, smtp_url="smtp://mx:2525"))
    assert (server.port, server.implicit_tls, server.username, server.password) == (
        2525,
        False,
        "relay",
        "secret",
    )


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1 that the client trusts (SSL_CERT_FILE)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def serve(**options: object) -> Iterator[RecordingServer]:
    server = RecordingServer(**options).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def send_to_three(settings: Settings) -> dict[str, str]:
    engine = db.engine_for(settings)
    with db.session_scope(engine) as session:
        make_edition(session)
        make_subscribers(session, 3)
    send_pending(engine, settings, now=NOW)
    with db.session_scope(engine) as session:
        states = {row.id: row.state for row in session.exec(select(OutboxMessage))}
    engine.dispose()
    return {str(key): value for key, value in states.items()}


def test_starttls_and_login_from_the_url(
    tls: ssl.SSLContext, tmp_path: Path, sqlite_url: str
) -> None:
    for server in serve(tls=tls, login=("news", "p@ss")):
        url = f"smtp://news:p%40ss@127.0.0.1:{server.port}"  # the server requires STARTTLS
        settings = load_settings(home=tmp_path, database_url=sqlite_url, smtp_url=url)
        assert set(send_to_three(settings).values()) == {"sent"}
        assert len(server.received) == 3 and "news" in server.logins


def test_implicit_tls_with_credentials_from_the_environment(
    tls: ssl.SSLContext, tmp_path: Path, sqlite_url: str
) -> None:
    for server in serve(tls=tls, implicit_tls=True, login=("relay", "secret")):
        settings = load_settings(
            home=tmp_path, database_url=sqlite_url, smtp_url=server.url, smtp_username="relay"
        )
        settings = settings.model_copy(update={"smtp_password": SecretStr("secret")})
        assert set(send_to_three(settings).values()) == {"sent"}
        assert len(server.received) == 3


def test_a_wrong_password_defers_instead_of_failing_the_readers(
    tmp_path: Path, sqlite_url: str
) -> None:
    for server in serve(login=("news", "right")):
        url = f"smtp://news:wrong@127.0.0.1:{server.port}"
        settings = load_settings(home=tmp_path, database_url=sqlite_url, smtp_url=url)
        assert set(send_to_three(settings).values()) == {"failed_temporary"}
        assert server.received == []


def test_a_rate_limited_send_still_reaches_everyone(tmp_path: Path, sqlite_url: str) -> None:
    for server in serve():
        engine = db.make_engine(sqlite_url)
        with db.session_scope(engine) as session:
            make_edition(session)
            make_subscribers(session, 30)
        settings = load_settings(
            home=tmp_path,
            database_url=sqlite_url,
            smtp_url=server.url,
            rate_per_second=100,
            rate_per_hour=100_000,
        )
        assert send_pending(engine, settings, now=NOW).sent == 30
        assert server.deliveries() == Counter(f"reader{n}@example.org" for n in range(30))
