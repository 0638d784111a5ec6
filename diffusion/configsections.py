"""The sections of the settings: [smtp], [send], [dkim], [collect], [web], [schedule], [bounces],
[subscribe], [feeds]; each key also answers to its flat name of before the sections."""

import ipaddress
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_address(value: str) -> bool:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def relay_urls(url: str) -> list[tuple[str, int]]:
    """The relays of an smtp url, each with its weight: "smtp://a:587?weight=3 smtp://b:587".

    Relays are separated by spaces or commas; `?weight=N` (a whole number, 1 by default) gives
    a relay N shares of the messages. ValueError names what is wrong.
    """
    relays = []
    for part in url.replace(",", " ").split():
        parts = urlsplit(part)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"scheme must be smtp:// or smtps://, not {part!r}")
        if not host_of(part):
            raise ValueError(f"no host in {part!r}")
        weight = 1
        for key, _, value in (item.partition("=") for item in parts.query.split("&") if item):
            if key != "weight" or not value.isdigit() or int(value) < 1:
                raise ValueError(f"{part!r}: the only option is weight=N (a whole number, 1 up)")
            weight = int(value)
        relays.append((parts._replace(query="").geturl(), weight))
    if not relays:
        raise ValueError(f"no relay in {url!r}")
    return relays


class Section(BaseModel):
    """A group of settings, `[name]` in diffusion.toml; each key keeps its flat name as alias."""

    model_config = ConfigDict(extra="forbid")
    flat_prefix: ClassVar[str] = ""  # smtp.url was smtp_url
    flat_exceptions: ClassVar[dict[str, str]] = {}  # send.lease_seconds was send_lease_seconds

    @classmethod
    def flat_name(cls, key: str) -> str:
        return cls.flat_exceptions.get(key, cls.flat_prefix + key)


class SmtpSettings(Section):
    """The relay: [smtp] url, username, password (environment only), connections, timeout."""

    flat_prefix = "smtp_"

    url: str | None = Field(
        None,
        description="smtp://host:port (STARTTLS when offered) or smtps://host:port; several "
        "relays separated by spaces, each with ?weight=N for N shares (default 1); without it, "
        "mail goes to the maildir var/outbox.",
    )
    username: str | None = Field(None, description="SMTP user, if not in the URL.")
    password: SecretStr | None = Field(None, description="SMTP password (environment only).")
    connections: int = Field(4, ge=1, description="SMTP connections kept open per worker.")
    timeout: float = Field(30.0, gt=0, description="Seconds before an SMTP command times out.")
    pipelining: bool = Field(
        True,
        description="Pipeline SMTP commands (RFC 2920) when the relay offers PIPELINING: "
        "about one round trip per message instead of four.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url:
            relay_urls(url)
        return url


class SendSettings(Section):
    """How a send goes: pace, retries, relay faults, leases, database outages."""

    flat_exceptions = {"lease_seconds": "send_lease_seconds"}

    rate_per_second: float | None = Field(None, gt=0, description="Most messages sent a second.")
    rate_per_hour: int | None = Field(None, gt=0, description="Most messages sent an hour.")
    retry_base_seconds: float = Field(
        60.0, gt=0, description="First retry delay; doubles at each temporary failure."
    )
    max_attempts: int = Field(6, ge=1, description="Attempts before a failure is permanent.")
    relay_failure_limit: int = Field(
        3,
        ge=1,
        description="Relay faults in a row (connection, TLS, login, sender refused, 421, "
        "timeout) that stop a send, leaving its messages queued; with several relays, that "
        "rest one relay while the others send.",
    )
    relay_rest_seconds: float = Field(
        60.0,
        gt=0,
        description="Seconds a failing relay (one of several) gets no messages before one is "
        "tried through it again.",
    )
    lease_seconds: float = Field(
        600.0,
        gt=0,
        description="Seconds a claimed message stays a sender's without renewal (renewed every "
        "third of it while sending); then another sender may take it.",
    )
    allow_test_settings: bool = Field(
        False,
        description="Let `send` and `serve` mail through SMTP with a loopback base_url or the "
        "example From address: for a test relay only.",
    )
    database_outage_seconds: float = Field(
        300.0,
        ge=0,
        description="Seconds a send waits, with backoff, for a database that stopped answering.",
    )


class DkimSettings(Section):
    """DKIM signatures: all three keys or none."""

    flat_prefix = "dkim_"

    domain: str | None = Field(None, description="Domain (d=) of DKIM signatures.")
    selector: str | None = Field(None, description="Selector (s=) of DKIM signatures.")
    private_key_file: Path | None = Field(None, description="PEM private key for DKIM.")

    @model_validator(mode="after")
    def _together(self) -> "DkimSettings":
        if bool(self.domain) != bool(self.selector) or (self.domain and not self.private_key_file):
            raise ValueError("domain, selector and private_key_file go together: set all or none")
        return self


class CollectSettings(Section):
    """Fetching feeds."""

    fetch_timeout: float = Field(15.0, gt=0, description="Seconds before a feed fetch gives up.")
    fetch_concurrency: int = Field(32, ge=1, description="Feeds fetched at the same time.")
    user_agent: str = Field("Diffusion/0.1 (+feeds)", description="User-Agent of feed fetches.")


class WebSettings(Section):
    """The pages and webhooks `diffusion serve` answers."""

    flat_prefix = "web_"

    host: str = Field("127.0.0.1", description="Address `diffusion serve` listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port `diffusion serve` listens on.")
    max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest request body the web pages accept; a larger one gets 413 unread.",
    )
    webhook_max_body_bytes: int = Field(
        320 * 1024,
        ge=1024,
        description="Largest body accepted under /webhooks/ (an SNS notification is up to 256 KB).",
    )
    keep_alive_seconds: int = Field(
        5, ge=1, description="Seconds an idle connection is kept open after an answer."
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Seconds a connection has to send a complete request head, else closed.",
    )
    max_connections: int = Field(
        4096,
        ge=16,
        description="Connections served at once (more get 503); kept below the open-file limit.",
    )


class ScheduleSettings(Section):
    """The jobs of `diffusion serve`, in `timezone`."""

    flat_prefix = "schedule_"

    collect_minutes: int = Field(
        60, ge=0, description="Minutes between collections (then feeds are rebuilt); 0: never."
    )
    monthly: str = Field(
        "0 9 1-7 * mon",
        description="Crontab (minute hour day month weekday, in `timezone`; every field must "
        "match) of the monthly newsletter: default, the first Monday at 09:00.",
    )
    weekly: str = Field(
        "0 9 * * mon", description="Crontab of the weekly digests: default, Mondays at 09:00."
    )
    retry_minutes: int = Field(
        10,
        ge=0,
        description="Minutes between sends of approved editions and due retries; 0: never.",
    )
    bounces_minutes: int = Field(
        30, ge=0, description="Minutes between readings of the bounce maildir; 0: never."
    )
    misfire_grace_hours: float = Field(
        12.0,
        ge=0,
        description="A job missed by less than this (service down) runs once at start-up.",
    )

    @field_validator("monthly", "weekly")
    @classmethod
    def _check_crontab(cls, spec: str) -> str:
        try:
            CronTrigger.from_crontab(spec, timezone=ZoneInfo("UTC"))
        except ValueError as exc:
            raise ValueError(
                f"{spec!r} is not a crontab spec "
                f"(minute hour day month weekday, e.g. '0 9 1-7 * mon'): {exc}"
            ) from exc
        return spec


class BounceSettings(Section):
    """Bounces, complaints and emailed unsubscribes (diffusion/bounces/)."""

    flat_prefix = "bounce_"
    flat_exceptions = {
        "soft_limit": "soft_bounce_limit",
        "mailgun_signing_key": "mailgun_signing_key",
        "sns_cert_url_pattern": "sns_cert_url_pattern",
    }

    soft_limit: int = Field(3, ge=1, description="Soft bounces that mark a subscriber.")
    maildir: Path | None = Field(
        None,
        description="Maildir where the bounce address's mail arrives; read by the bounces job.",
    )
    mailbox: str | None = Field(
        None,
        description="Where returned mail arrives, read by the bounces job: a maildir or mbox path, "
        "or imaps://user@host/INBOX (password in DIFFUSION_BOUNCE_IMAP_PASSWORD).",
    )
    imap_password: SecretStr | None = Field(
        None, description="Password of the bounce IMAP mailbox (environment only)."
    )
    imap_done_folder: str | None = Field(
        None, description="IMAP folder read reports are moved to; default: only marked \\Seen."
    )
    local_part: str = Field(
        "bounces", description="Local part of the VERP envelope sender, bounces+<token>@domain."
    )
    domain: str | None = Field(
        None, description="Domain of the VERP envelope sender; default: from_address's domain."
    )
    quiet_days: int = Field(
        7, ge=1, description="Days without a soft bounce after which the bounce score restarts."
    )
    mailgun_signing_key: SecretStr | None = Field(
        None, description="Mailgun webhook signing key (environment only); unset: no webhook."
    )
    sns_cert_url_pattern: str = Field(
        r"https://sns\.[a-z0-9-]+\.amazonaws\.com/[^?#]*\.pem",
        description="Regular expression an Amazon SNS SigningCertURL must match (SES webhook).",
    )


class SubscribeSettings(Section):
    """Subscription requests: confirmation links, rate limits, purging."""

    flat_exceptions = {
        "limit_per_address": "subscribe_limit_per_address",
        "limit_per_client": "subscribe_limit_per_client",
    }

    confirm_token_days: int = Field(
        7, ge=1, description="Days a subscription confirmation link stays valid."
    )
    limit_per_address: int = Field(
        3, ge=1, description="Subscription requests an hour for one address (per process)."
    )
    limit_per_client: int = Field(
        20, ge=1, description="Subscription requests an hour from one client IP (per process)."
    )
    pending_purge_days: int = Field(
        30,
        ge=1,
        description="Days after which a subscription request never confirmed is removed.",
    )


class FeedSettings(Section):
    """The ids of the feeds Diffusion writes."""

    flat_prefix = "feed_"

    tag_authority: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9.@-]+$",
        description="Authority of the tag: URIs naming feeds, entries and categories (a domain "
        "or address the organisation holds); default: the domain of from_address. Never "
        "change it once feeds are read: every id would change.",
    )
    tag_date: str = Field(
        "2026",
        pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$",
        description="Date of the tag: URIs (YYYY, YYYY-MM or YYYY-MM-DD), a day the authority "
        "was the organisation's.",
    )
