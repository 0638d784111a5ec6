"""A real aiosmtpd server on 127.0.0.1, port 0, recording what it accepts; faults are injectable.

Use the `smtp_server` fixture (imported into a test module), or `RecordingServer` directly:

    server.rcpt_reply = lambda address: "451 4.3.0 try later" if "defer" in address else None
    server.data_fault = lambda envelope: "drop"      # drop the connection during DATA
    server.rcpt_delay = lambda address: 5.0          # seconds before answering RCPT
    server.verb_fault = lambda verb: "530 5.7.0 Authentication required" if verb == "MAIL" else None
    server.verb_fault = lambda verb: "hang"          # never answer EHLO/MAIL/DATA...
    server.verb_fault = lambda verb: "354 go+drop" if verb == "DATA" else None  # reply, then cut
    RecordingServer(pipelining=False)                # a relay that does not offer PIPELINING
    server.max_sessions = 2                          # "421 too many connections" beyond two
"""

import asyncio
import ssl
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    """One message the server accepted, for each of its recipients."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    def parsed(self) -> EmailMessage:
        return cast(EmailMessage, message_from_bytes(self.data, policy=policy.default))


class _Handler:
    def __init__(self, server: "RecordingServer") -> None:
        self.server = server

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.server.pipelining:  # aiosmtpd reads a line at a time: pipelined input works
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        delay = self.server.rcpt_delay(address) if self.server.rcpt_delay else 0.0
        if delay:
            await asyncio.sleep(delay)
        reply = self.server.rcpt_reply(address) if self.server.rcpt_reply else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self.server.data_fault(envelope) if self.server.data_fault else None
        if fault == "drop":
            # The client sees the connection go away before the server's final answer.
            assert smtp.transport is not None
            smtp.transport.abort()
            return "421 4.4.2 connection dropped"
        if fault:
            return fault
        content = envelope.original_content or b""
        with self.server.lock:
            self.server.received.append(
                Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), bytes(content))
            )
        return "250 2.0.0 Message accepted for delivery"


class _FaultySMTP(SMTP):
    """aiosmtpd's server, answering any verb as `verb_fault` says before its own handling."""

    def __init__(self, server: "RecordingServer", *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recording = server
        self._counted = False
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._counted:  # once: STARTTLS makes the connection again over TLS
            self._counted = True
            server = self.recording
            with server.lock:
                server.sessions += 1
                self._refused = server.max_sessions is not None and (
                    server.sessions > server.max_sessions
                )
                if self._refused:
                    server.crowded += 1
                else:
                    server.peak_sessions = max(server.peak_sessions, server.sessions)
            if self._refused:  # as Postfix's smtpd answers past its per-client limit
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(b"421 4.7.0 Too many concurrent SMTP connections; try later\r\n")
                transport.close()
                return
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        with self.recording.lock:
            self.recording.sessions -= 1
        if not self._refused:
            super().connection_lost(error)

    async def _fault(self, verb: str) -> bool:
        fault = self.recording.verb_fault(verb) if self.recording.verb_fault else None
        if fault == "hang":
            await asyncio.sleep(3600)  # a relay that accepted the connection and went silent
        if fault and fault.endswith("+drop"):  # the reply, then the connection goes away
            await self.push(fault.removesuffix("+drop"))
            assert self.transport is not None
            self.transport.abort()
        elif fault:
            await self.push(fault)
        return bool(fault)

    async def smtp_EHLO(self, hostname: str) -> None:
        if not await self._fault("EHLO"):
            await super().smtp_EHLO(hostname)

    async def smtp_HELO(self, hostname: str) -> None:
        if not await self._fault("HELO"):
            await super().smtp_HELO(hostname)

    async def smtp_MAIL(self, arg: str | None) -> None:
        # Commands already waiting behind MAIL, before it was answered: the client pipelines.
        if self._reader is not None and getattr(self._reader, "_buffer", b""):
            with self.recording.lock:
                self.recording.pipelined += 1
        if not await self._fault("MAIL"):
            await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if not await self._fault("RCPT"):
            await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if not await self._fault("DATA"):
            await super().smtp_DATA(arg)


class RecordingServer:
    """An SMTP server in its own thread and event loop; `received` lists what it accepted."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        login: tuple[str, str] | None = None,
        pipelining: bool = True,
    ) -> None:
        self.pipelining = pipelining  # advertise PIPELINING, as Postfix and most relays do
        self.pipelined = 0  # MAIL commands that arrived with the next commands behind them
        self.max_sessions: int | None = None  # more at once are refused with a 421 greeting
        self.sessions = 0
        self.peak_sessions = 0  # the most sessions served at once
        self.crowded = 0  # connections refused as one too many
        self.tls = tls  # offered with STARTTLS, or wrapping the connection if implicit_tls
        self.implicit_tls = implicit_tls
        self.login = login  # required AUTH credentials
        self.logins: list[str] = []
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.rcpt_reply: Callable[[str], str | None] | None = None
        self.rcpt_delay: Callable[[str], float] | None = None
        self.data_fault: Callable[[Envelope], str | None] | None = None
        self.verb_fault: Callable[[str], str | None] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}"

    def _authenticate(
        self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if self.login and isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if (user, password) == self.login:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _protocol(self) -> SMTP:
        options: dict[str, Any] = {}
        if self.tls is not None and not self.implicit_tls:
            options.update(tls_context=self.tls, require_starttls=True)
        if self.login:
            options.update(
                authenticator=self._authenticate,
                auth_required=True,
                # aiosmtpd only counts STARTTLS as TLS; implicit TLS is as safe.
                auth_require_tls=self.tls is not None and not self.implicit_tls,
            )
        with warnings.catch_warnings():  # AUTH without TLS is what a plain test server does
            warnings.simplefilter("ignore", UserWarning)
            return _FaultySMTP(
                self, _Handler(self), hostname="test", ident="diffusion-test", **options
            )

    def start(self) -> "RecordingServer":
        self._thread.start()

        async def serve() -> asyncio.Server:
            wrap = self.tls if self.implicit_tls else None
            return await self._loop.create_server(self._protocol, self.host, 0, ssl=wrap)

        self._server = asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def deliveries(self) -> Counter[str]:
        """How many messages each recipient address received."""
        with self.lock:
            return Counter(address for message in self.received for address in message.rcpt_tos)

    def messages_to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            found = [m.parsed() for m in self.received if address in m.rcpt_tos]
        return found


@pytest.fixture
def smtp_server() -> Iterator[RecordingServer]:
    """A recording SMTP server on 127.0.0.1 and a free port; stopped after the test."""
    server = RecordingServer().start()
    try:
        yield server
    finally:
        server.stop()


# Data for delivery tests: an edition with every placeholder, and its segment's subscribers.
EDITION_HTML = (
    '<!doctype html><html lang="en"><body><p>[[diffusion:greeting]]</p>'
    "<p>News for NGO partners &amp; the Liaison Committee: caf\u00e9, "
    "\u00e9t\u00e9, \u0645\u0631\u062d\u0628\u0627.</p>"
    + "<p>Literacy circles in Dhaka reached 1,200 learners this month. "
    * 40
    + '</p><p><a href="[[diffusion:preferences_url]]">Preferences</a> '
    '<a href="[[diffusion:unsubscribe_url]]">Unsubscribe</a> ([[diffusion:email]])</p>'
    "</body></html>"
)
EDITION_TEXT = (
    "[[diffusion:greeting]]\n\nNews for NGO partners, caf\u00e9.\n"
    + "Literacy circles in Dhaka reached 1,200 learners.\n" * 20
    + "\nPreferences: [[diffusion:preferences_url]]\nUnsubscribe: [[diffusion:unsubscribe_url]]\n"
    "Sent to [[diffusion:email]] ([[diffusion:name]])\n"
)


def make_edition(
    session: Any,
    *,
    audience: str = "liaison_committee",
    language: str = "en",
    period: str = "2026-11",
    subject: str = "NGO partners' newsletter, November 2026",
    status: str = "approved",
) -> Any:
    """An approved edition of the segment `audience|language|monthly`, stored."""
    from diffusion.contracts import Segment
    from diffusion.models import Edition

    segment = Segment(audience=audience, language=language)
    edition = Edition(
        segment=segment.id,
        audience=audience,
        language=language,
        period=period,
        subject=subject,
        html=EDITION_HTML,
        text=EDITION_TEXT,
        item_count=40,
        status=status,
    )
    session.add(edition)
    session.flush()
    return edition


def make_subscribers(
    session: Any, count: int, *, audience: str = "liaison_committee", prefix: str = "reader"
) -> list[Any]:
    """`count` active English people with one subscription to the audience, stored."""
    from diffusion.models import Person, Subscription

    people = [
        Person(email=f"{prefix}{n}@example.org", name=f"Reader {n}", status="active")
        for n in range(count)
    ]
    session.add_all(people)
    session.flush()  # one flush for all: crash tests store 20,000 of them
    session.add_all(Subscription(person_id=person.id, audience=audience) for person in people)
    session.flush()
    return people
