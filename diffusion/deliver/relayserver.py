"""One SMTP relay: where and how to connect (URL, login, TLS), what failing to reach it means."""

import ssl
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote, urlsplit

import aiosmtplib

from diffusion.config import Settings
from diffusion.configsections import relay_urls
from diffusion.configsenders import SenderIdentity
from diffusion.deliver.outcome import Outcome
from diffusion.errors import ConfigError


@dataclass(frozen=True)
class SMTPServer:
    """Where and how to connect, from DIFFUSION_SMTP_URL and the credential settings."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None
    timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "SMTPServer":
        """The first relay of smtp_url."""
        return cls.all_from_settings(settings)[0][0]

    @classmethod
    def all_from_settings(cls, settings: Settings) -> list[tuple["SMTPServer", int]]:
        """Every relay of smtp_url, with its weight."""
        if not settings.smtp.url:
            raise ConfigError("smtp_url is not set: there is no SMTP server to connect to")
        try:
            relays = relay_urls(settings.smtp.url)
        except ValueError as exc:
            raise ConfigError(f"smtp_url: {exc}") from exc
        return [(cls.from_url(url, settings), weight) for url, weight in relays]

    @classmethod
    def from_url(
        cls, address: str, settings: Settings, sender: SenderIdentity | None = None
    ) -> "SMTPServer":
        """The relay at `address`: smtp_url's credentials, or a sender identity's own."""
        url = urlsplit(address)
        implicit = url.scheme == "smtps"
        try:
            port = url.port or (465 if implicit else 25)
        except ValueError as exc:
            raise ConfigError(f"smtp_url: bad port in {address!r}") from exc
        if not url.hostname:
            raise ConfigError(f"smtp_url: no host in {address!r}")
        username = unquote(url.username) if url.username else settings.smtp.username
        secret = settings.smtp.password
        if sender is not None:  # never the shared relays' login
            username = unquote(url.username) if url.username else None
            secret = sender.password
        if url.password:
            password: str | None = unquote(url.password)
        elif secret:
            password = secret.get_secret_value()
        else:
            password = None
        return cls(url.hostname, port, implicit, username, password, settings.smtp.timeout)

    @property
    def name(self) -> str:
        """host:port, what the outbox records of the relay that took a message."""
        return f"{self.host}:{self.port}"

    @cached_property
    def tls_context(self) -> ssl.SSLContext:
        """The system's trust store, read once for all of this relay's connections.

        Reading it takes about 25 ms: once per connection, 16 connections spent 0.4 s of a
        2,000-message send before the first message (benchmarks/send.py --rtt-ms 20).
        """
        return ssl.create_default_context()

    def client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.implicit_tls,
            start_tls=None if not self.implicit_tls else False,  # None: STARTTLS when offered
            tls_context=self.tls_context,
            username=self.username,
            password=self.password,
            timeout=self.timeout,
        )


def connection_fault(exc: BaseException, server: SMTPServer) -> Outcome:
    """The relay's fault when connecting, TLS or the login failed: said with where and why."""
    where = f"{server.host}:{server.port}"
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, TimeoutError):
        return Outcome("relay", f"the relay {where} did not answer within {server.timeout:g} s")
    if isinstance(exc, ssl.SSLError):
        return Outcome("relay", f"TLS with the relay {where} failed: {detail}")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return Outcome("relay", f"the relay {where} dropped the connection: {detail}")
    return Outcome("relay", f"the relay {where} could not be reached: {detail}")
