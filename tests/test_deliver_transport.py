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
from diffusion.contracts import Recipient, Segment
from diffusion.deliver import MessageTemplate, send_pending
from diffusion.deliver.relayserver import SMTPServer
from diffusion.deliver.transport import make_transport
from diffusion.models import Edition, OutboxMessage
from tests.smtpserver import RecordingServer, make_edition, make_subscribers, smtp_server

__all__ = ["smtp_server"]

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


async def test_template_messages_arrive_byte_for_byte_and_other_bytes_are_normalised(
    tmp_path: Path, smtp_server: RecordingServer
) -> None:
    settings = load_settings(
        home=tmp_path, secret_key="s-for-signing-links-0123456789ab", smtp_url=smtp_server.url
    )
    dotted = ".A line starting with a dot\n..and two\n.\nthe end."
    edition = Edition(
        id=1,
        segment=Segment("liaison_committee").id,
        audience="liaison_committee",
        period="2026-11",
        subject="Dots",
        html=f"<p>[[diffusion:greeting]]</p><pre>\n{dotted}</pre>",
        text=f"[[diffusion:name]]\n{dotted}\n",
        created_at=NOW,
    )
    template = MessageTemplate.from_edition(edition, settings, now=NOW)
    reader = Recipient(1, "dot@example.org", ".Dot", "en")
    prepared = template.personalise(reader)
    other = b"Subject: not from a template\n\n.one\nbare line ends\r..two"
    transport = make_transport(settings)
    try:
        first = await transport.deliver(template.sender, [reader.email], prepared, wire_ready=True)
        second = await transport.deliver(template.sender, [reader.email], other)
    finally:
        await transport.close()
    assert [first[reader.email].kind, second[reader.email].kind] == ["sent", "sent"]
    # What the server stored after undoing the dot-stuffing: exactly the bytes we made ...
    received = [message.data for message in smtp_server.received]
    assert received[0] == prepared
    text, html = smtp_server.received[0].parsed().iter_parts()
    assert text.get_content().replace("\r\n", "\n") == f".Dot\n{dotted}\n"
    assert dotted in html.get_content().replace("\r\n", "\n")
    # ... and bytes from elsewhere, normalised by aiosmtplib as before.
    assert received[1] == b"Subject: not from a template\r\n\r\n.one\r\nbare line ends\r\n..two\r\n"


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
        settings = settings.replace(smtp_password=SecretStr("secret"))
        assert set(send_to_three(settings).values()) == {"sent"}
        assert len(server.received) == 3


def test_a_wrong_password_leaves_the_readers_queued(tmp_path: Path, sqlite_url: str) -> None:
    for server in serve(login=("news", "right")):
        url = f"smtp://news:wrong@127.0.0.1:{server.port}"
        settings = load_settings(home=tmp_path, database_url=sqlite_url, smtp_url=url)
        assert set(send_to_three(settings).values()) == {"queued"}  # the relay's fault
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
