"""Settings: one typed object read from diffusion.toml, then DIFFUSION_* variables, then flags."""

import ipaddress
import os
import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from diffusion import i18n, keys
from diffusion.errors import ConfigError

# Secrets are read from the environment only, so that a config file can be shared or committed.
SECRET_KEYS = (
    "smtp_password",
    "secret_key",
    "secret_keys",
    "bounce_imap_password",
    "mailgun_signing_key",
)
PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_path(name: str) -> Path:
    """A folder shipped with Diffusion: the source checkout's copy, else the installed wheel's."""
    checkout = PACKAGE_DIR.parent / name
    return checkout if checkout.is_dir() else PACKAGE_DIR / "_bundled" / name


def _config_file(home: Any) -> Path:
    explicit = os.environ.get("DIFFUSION_CONFIG")
    if explicit:
        return Path(explicit)
    base = Path(home or os.environ.get("DIFFUSION_HOME") or Path.cwd())
    return base / "diffusion.toml"


def _read_toml(settings_cls: type[BaseSettings], path: Path) -> TomlConfigSettingsSource:
    """The config file's settings; a syntax error is one line with file, line and column."""
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r" \(at line (\d+), column (\d+)\)$", message)
        if found:
            where = f"{found.group(1)}:{found.group(2)}"
            message = message[: found.start()]
        else:  # "at end of document": the last line
            text = path.read_text(encoding="utf-8", errors="replace")
            lines = text.splitlines() or [""]
            where = f"{len(lines)}:{len(lines[-1]) + 1}"
            message = re.sub(r" \(at end of document\)$", " at the end of the file", message)
        raise ConfigError(f"{path}:{where}: not valid TOML: {message}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the settings: {exc.strerror or exc}") from exc


def setting_origin(key: str, home: Any = None) -> str:
    """Where a setting was given: its environment variable, else the config file, else a flag."""
    variable = f"DIFFUSION_{key.upper()}"
    if variable in os.environ:
        return f"environment variable {variable}"
    path = _config_file(home)
    try:
        with path.open("rb") as handle:
            if key in tomllib.load(handle):
                return str(path)
    except (OSError, tomllib.TOMLDecodeError):
        pass
    return f"--{key.replace('_', '-')}"


EXAMPLE_FROM = "newsletter@diffusion.example.org"


def _host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_address(value: str) -> bool:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


class Settings(BaseSettings):
    """Every setting of Diffusion, with its default and what it is for."""

    model_config = SettingsConfigDict(env_prefix="DIFFUSION_", extra="forbid")

    home: Path = Field(
        default_factory=Path.cwd,
        description="Data directory; var/ below it holds the database, outbox and feeds.",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file var/diffusion.db under home."
    )
    timezone: str = Field("Europe/Paris", description="Time zone of the schedule and of dates.")
    languages: list[str] = Field(
        ["ar", "zh", "en", "fr", "ru", "es"],
        description="Languages editions, pages and feeds are offered in (default: the six UN "
        "languages); each needs a catalogue diffusion/locale/LANG/LC_MESSAGES/diffusion.po.",
    )
    default_language: str = Field("en", description="Language used when none is asked for.")
    base_url: str = Field(
        "http://127.0.0.1:8080", description="Public address of the web pages, used in links."
    )
    organisation_name: str = Field(
        "NGO-UNESCO Partnership Diffusion", description="Name shown as the sender of editions."
    )
    newsletter_names: dict[str, str] = Field(
        {},
        description='The newsletter\'s name per language, e.g. {fr = "Lettre des partenaires"}; '
        "a language not given uses organisation_name (its translation when left as default).",
    )
    sender_names: dict[str, str] = Field(
        {},
        description="The From display name per language; default: the newsletter's name.",
    )
    from_address: str = Field(EXAMPLE_FROM, description="Address editions are sent from.")
    reply_to: str | None = Field(None, description="Reply-To address, if other than From.")
    list_id: str = Field(
        "partners.diffusion.example.org", description="List-Id domain part (RFC 2919)."
    )
    unsubscribe_mailto: str = Field(
        "unsubscribe@diffusion.example.org",
        description="Address of the mailto: List-Unsubscribe link.",
    )
    smtp_url: str | None = Field(
        None,
        description="smtp://host:port (STARTTLS when offered) or smtps://host:port; "
        "without it, mail goes to the maildir var/outbox.",
    )
    smtp_username: str | None = Field(None, description="SMTP user, if not in the URL.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (environment only).")
    smtp_connections: int = Field(4, ge=1, description="SMTP connections kept open per worker.")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds before an SMTP command times out.")
    smtp_pipelining: bool = Field(
        True,
        description="Pipeline SMTP commands (RFC 2920) when the relay offers PIPELINING: "
        "about one round trip per message instead of four.",
    )
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
        "timeout) that stop a send, leaving its messages queued.",
    )
    send_lease_seconds: float = Field(
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
    soft_bounce_limit: int = Field(3, ge=1, description="Soft bounces that mark a subscriber.")
    dkim_domain: str | None = Field(None, description="Domain (d=) of DKIM signatures.")
    dkim_selector: str | None = Field(None, description="Selector (s=) of DKIM signatures.")
    dkim_private_key_file: Path | None = Field(None, description="PEM private key for DKIM.")
    secret_key: SecretStr | None = Field(
        None,
        description="Key signing subscription links, at least 32 bytes (environment only); "
        "default: var/secret_key, made by `diffusion init`. Set it on every host of a "
        "multi-host install.",
    )
    secret_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [],
        description="Instead of secret_key, to rotate keys: the current key, then older keys "
        "that links may still be signed with, separated by spaces (environment only).",
    )
    fetch_timeout: float = Field(15.0, gt=0, description="Seconds before a feed fetch gives up.")
    fetch_concurrency: int = Field(32, ge=1, description="Feeds fetched at the same time.")
    user_agent: str = Field("Diffusion/0.1 (+feeds)", description="User-Agent of feed fetches.")
    require_approval: bool = Field(
        False, description="Editions wait as drafts until an editor approves them."
    )
    digest_max_items: int = Field(
        40, ge=1, description="Items shown in one email; the rest are linked online."
    )
    templates_dir: Path | None = Field(None, description="Email templates; default: bundled.")
    routing_dir: Path | None = Field(
        None, description="Routing rules (audiences.toml); default: home/subscribers, else bundled."
    )
    web_host: str = Field("127.0.0.1", description="Address `diffusion serve` listens on.")
    web_port: int = Field(8080, ge=0, le=65535, description="Port `diffusion serve` listens on.")
    web_max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest request body the web pages accept; a larger one gets 413 unread.",
    )
    web_webhook_max_body_bytes: int = Field(
        320 * 1024,
        ge=1024,
        description="Largest body accepted under /webhooks/ (an SNS notification is up to 256 KB).",
    )
    web_keep_alive_seconds: int = Field(
        5, ge=1, description="Seconds an idle connection is kept open after an answer."
    )
    web_header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Seconds a connection has to send a complete request head, else closed.",
    )
    web_max_connections: int = Field(
        4096,
        ge=16,
        description="Connections served at once (more get 503); kept below the open-file limit.",
    )
    schedule_collect_minutes: int = Field(
        60, ge=0, description="Minutes between collections (then feeds are rebuilt); 0: never."
    )
    schedule_monthly: str = Field(
        "0 9 1-7 * mon",
        description="Crontab (minute hour day month weekday, in `timezone`; every field must "
        "match) of the monthly newsletter: default, the first Monday at 09:00.",
    )
    schedule_weekly: str = Field(
        "0 9 * * mon", description="Crontab of the weekly digests: default, Mondays at 09:00."
    )
    schedule_retry_minutes: int = Field(
        10,
        ge=0,
        description="Minutes between sends of approved editions and due retries; 0: never.",
    )
    schedule_bounces_minutes: int = Field(
        30, ge=0, description="Minutes between readings of the bounce maildir; 0: never."
    )
    bounce_maildir: Path | None = Field(
        None,
        description="Maildir where the bounce address's mail arrives; read by the bounces job.",
    )
    # Bounces, complaints and emailed unsubscribes (diffusion/bounces/).
    bounce_mailbox: str | None = Field(
        None,
        description="Where returned mail arrives, read by the bounces job: a maildir or mbox path, "
        "or imaps://user@host/INBOX (password in DIFFUSION_BOUNCE_IMAP_PASSWORD).",
    )
    bounce_imap_password: SecretStr | None = Field(
        None, description="Password of the bounce IMAP mailbox (environment only)."
    )
    bounce_imap_done_folder: str | None = Field(
        None, description="IMAP folder read reports are moved to; default: only marked \\Seen."
    )
    bounce_local_part: str = Field(
        "bounces", description="Local part of the VERP envelope sender, bounces+<token>@domain."
    )
    bounce_domain: str | None = Field(
        None, description="Domain of the VERP envelope sender; default: from_address's domain."
    )
    bounce_quiet_days: int = Field(
        7, ge=1, description="Days without a soft bounce after which the bounce score restarts."
    )
    mailgun_signing_key: SecretStr | None = Field(
        None, description="Mailgun webhook signing key (environment only); unset: no webhook."
    )
    sns_cert_url_pattern: str = Field(
        r"https://sns\.[a-z0-9-]+\.amazonaws\.com/[^?#]*\.pem",
        description="Regular expression an Amazon SNS SigningCertURL must match (SES webhook).",
    )
    schedule_misfire_grace_hours: float = Field(
        12.0,
        ge=0,
        description="A job missed by less than this (service down) runs once at start-up.",
    )
    confirm_token_days: int = Field(
        7, ge=1, description="Days a subscription confirmation link stays valid."
    )
    subscribe_limit_per_address: int = Field(
        3, ge=1, description="Subscription requests an hour for one address (per process)."
    )
    subscribe_limit_per_client: int = Field(
        20, ge=1, description="Subscription requests an hour from one client IP (per process)."
    )
    feed_tag_authority: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9.@-]+$",
        description="Authority of the tag: URIs naming feeds, entries and categories (a domain "
        "or address the organisation holds); default: the domain of from_address. Never "
        "change it once feeds are read: every id would change.",
    )
    feed_tag_date: str = Field(
        "2026",
        pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$",
        description="Date of the tag: URIs (YYYY, YYYY-MM or YYYY-MM-DD), a day the authority "
        "was the organisation's.",
    )
    pending_purge_days: int = Field(
        30,
        ge=1,
        description="Days after which a subscription request never confirmed is removed.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        home = getattr(init_settings, "init_kwargs", {}).get("home")
        toml = _read_toml(settings_cls, _config_file(home))
        for key in SECRET_KEYS:
            if key in toml.toml_data:
                raise ConfigError(
                    f"{_config_file(home)}: {key} is a secret; set DIFFUSION_{key.upper()} "
                    "in the environment instead"
                )
        return (init_settings, env_settings, toml)

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return keys.split_keys(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if self.secret_key is not None and self.secret_keys:
            raise ValueError("secret_key and secret_keys: set one of them, not both")
        if self.secret_key is not None or self.secret_keys:
            single = self.secret_key is not None
            given = [self.secret_key] if self.secret_key is not None else self.secret_keys
            source = "DIFFUSION_SECRET_KEY" if single else "DIFFUSION_SECRET_KEYS"
            try:
                keys.check_keys(
                    [key.get_secret_value() for key in given], source, keys.ENVIRONMENT_HINT
                )
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from exc
        if self.default_language not in self.languages:
            raise ValueError(
                f"default_language: {self.default_language!r} is not in languages {self.languages}"
            )
        missing = [code for code in self.languages if not i18n.has_catalogue(code)]
        if missing:
            raise ValueError(
                f"languages: no catalogue for {', '.join(missing)}; have "
                f"{', '.join(i18n.available_languages())} (see diffusion/locale/README.md)"
            )
        for key in ("newsletter_names", "sender_names"):
            for code in getattr(self, key):
                if code not in self.languages:
                    raise ValueError(f"{key}: {code!r} is not in languages {self.languages}")
        if self.smtp_url and urlsplit(self.smtp_url).scheme not in ("smtp", "smtps"):
            raise ValueError(f"smtp_url: scheme must be smtp:// or smtps://, not {self.smtp_url!r}")
        if self.smtp_url and not _host_of(self.smtp_url):
            raise ValueError(f"smtp_url: no host in {self.smtp_url!r}")
        if urlsplit(self.base_url).scheme not in ("http", "https") or not _host_of(self.base_url):
            raise ValueError(
                f"base_url: {self.base_url!r} is not an http:// or https:// address with a host"
            )
        for key in ("from_address", "reply_to", "unsubscribe_mailto"):
            value = getattr(self, key)
            if value is not None and not _is_address(value):
                raise ValueError(f"{key}: {value!r} is not an email address (name@domain)")
        if not re.fullmatch(
            r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9-]+)+", self.list_id
        ):
            raise ValueError(f"list_id: {self.list_id!r} is not a domain name (lists.example.org)")
        for key in ("schedule_monthly", "schedule_weekly"):
            try:
                CronTrigger.from_crontab(getattr(self, key), timezone=self.zone)
            except ValueError as exc:
                raise ValueError(
                    f"{key}: {getattr(self, key)!r} is not a crontab spec "
                    f"(minute hour day month weekday, e.g. '0 9 1-7 * mon'): {exc}"
                ) from exc
        if bool(self.dkim_domain) != bool(self.dkim_selector) or (
            self.dkim_domain and not self.dkim_private_key_file
        ):
            raise ValueError(
                "dkim_domain, dkim_selector and dkim_private_key_file go together: set all or none"
            )
        return self

    def sending_problems(self) -> list[str]:
        """Why real mail sent through SMTP with these settings would be broken; [] when fine."""
        if not self.smtp_url or self.allow_test_settings:
            return []
        problems = []
        host = _host_of(self.base_url)
        if host == "localhost" or host.endswith(".localhost") or _is_loopback(host):
            problems.append(
                f"base_url is {self.base_url}, a loopback address: every link would lead "
                "nowhere (set DIFFUSION_BASE_URL to the public address of the web pages)"
            )
        if self.from_address == EXAMPLE_FROM:
            problems.append(
                f"from_address is the example {EXAMPLE_FROM} (set DIFFUSION_FROM_ADDRESS)"
            )
        return problems

    def require_sending_ready(self) -> None:
        """ConfigError naming the settings to set, before any real mail goes out through SMTP."""
        problems = self.sending_problems()
        if problems:
            raise ConfigError(
                "refusing to send through SMTP: "
                + "; ".join(problems)
                + "; for a test relay only, set DIFFUSION_ALLOW_TEST_SETTINGS=true"
            )

    # Where state lives: everything under one data directory.
    @property
    def var_dir(self) -> Path:
        return self.home / "var"

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"

    @property
    def feeds_dir(self) -> Path:
        return self.var_dir / "feeds"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'diffusion.db'}"

    @property
    def templates(self) -> Path:
        return self.templates_dir or bundled_path("templates") / "email"

    @property
    def routing(self) -> Path:
        if self.routing_dir:
            return self.routing_dir
        local = self.home / "subscribers"
        return local if (local / "audiences.toml").is_file() else bundled_path("subscribers")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def key_file(self) -> Path:
        return self.var_dir / "secret_key"

    @property
    def keys_from_environment(self) -> bool:
        return self.secret_key is not None or bool(self.secret_keys)

    @cached_property
    def keys_in_use(self) -> tuple[str, ...]:
        """The keys of signed links, current first: from the environment, else var/secret_key.

        Read once (links are signed per recipient); ConfigError (naming the variable or the
        file) when a key is missing, empty or shorter than 32 bytes. The file is made by
        `diffusion init`, never here: a missing file where links were already mailed must not
        silently become a new key.
        """
        if self.secret_key is not None:
            return (self.secret_key.get_secret_value(),)
        if self.secret_keys:
            return tuple(key.get_secret_value() for key in self.secret_keys)
        return keys.read_key_file(self.key_file)

    def signing_keys(self) -> tuple[str, ...]:
        """See keys_in_use."""
        return self.keys_in_use

    def signing_key(self) -> str:
        """The current key: the one new links are signed with."""
        return self.signing_keys()[0]


def load_settings(**overrides: Any) -> Settings:
    """Settings from diffusion.toml, then the environment, then the given flags (None = unset)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = str(err["msg"]).removeprefix("Value error, ")
            key = ".".join(str(part) for part in err["loc"])
            if not key and message.startswith("DIFFUSION_"):
                problems.append(message)  # a key check names its variable itself
                continue
            if not key:  # a check across keys says first which key it is about
                named = re.match(r"(\w+)(?:,|:)", message)
                key = named.group(1) if named and named.group(1) in Settings.model_fields else ""
                if key:
                    message = message[len(key) :].lstrip(":, ")
            if key:
                origin = setting_origin(key.split(".")[0], given.get("home"))
                problems.append(f"{origin}: {key}: {message}")
            else:
                problems.append(f"settings: {message}")
        raise ConfigError("; ".join(problems)) from exc
