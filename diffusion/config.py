"""Settings: one typed object read from diffusion.toml, then DIFFUSION_* variables, then flags."""

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from diffusion import i18n
from diffusion.errors import ConfigError

# Secrets are read from the environment only, so that a config file can be shared or committed.
SECRET_KEYS = ("smtp_password", "secret_key")
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
    from_address: str = Field(
        "newsletter@diffusion.example.org", description="Address editions are sent from."
    )
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
    rate_per_second: float | None = Field(None, gt=0, description="Most messages sent a second.")
    rate_per_hour: int | None = Field(None, gt=0, description="Most messages sent an hour.")
    retry_base_seconds: float = Field(
        60.0, gt=0, description="First retry delay; doubles at each temporary failure."
    )
    max_attempts: int = Field(6, ge=1, description="Attempts before a failure is permanent.")
    soft_bounce_limit: int = Field(3, ge=1, description="Soft bounces that mark a subscriber.")
    dkim_domain: str | None = Field(None, description="Domain (d=) of DKIM signatures.")
    dkim_selector: str | None = Field(None, description="Selector (s=) of DKIM signatures.")
    dkim_private_key_file: Path | None = Field(None, description="PEM private key for DKIM.")
    secret_key: SecretStr | None = Field(
        None,
        description="Key signing subscription links (environment only); "
        "default: generated once into var/secret_key.",
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
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file(home))
        for key in SECRET_KEYS:
            if key in toml.toml_data:
                raise ConfigError(
                    f"{_config_file(home)}: {key} is a secret; set DIFFUSION_{key.upper()} "
                    "in the environment instead"
                )
        return (init_settings, env_settings, toml)

    @model_validator(mode="after")
    def _check(self) -> "Settings":
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

    def signing_key(self) -> str:
        """The key for signed links: from the environment, else created once under var/."""
        if self.secret_key:
            return self.secret_key.get_secret_value()
        path = self.var_dir / "secret_key"
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()


def load_settings(**overrides: Any) -> Settings:
    """Settings from diffusion.toml, then the environment, then the given flags (None = unset)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
