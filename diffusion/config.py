"""Settings: one typed object read from diffusion.toml, then DIFFUSION_* variables, then flags.

Grouped in sections (`[smtp]` in the file, `settings.smtp.url` in code, DIFFUSION_SMTP__URL);
the flat names of before the sections (`smtp_url`, DIFFUSION_SMTP_URL) are aliases of them
(diffusion/configfile.py).
"""

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from diffusion import configfile, i18n, keys
from diffusion.configfile import setting_origin
from diffusion.configsections import (
    BounceSettings,
    CollectSettings,
    DkimSettings,
    FeedSettings,
    ScheduleSettings,
    Section,
    SendSettings,
    SmtpSettings,
    SubscribeSettings,
    WebSettings,
    host_of,
    is_address,
    is_loopback,
)
from diffusion.configsenders import SenderIdentity, check_senders
from diffusion.errors import ConfigError

__all__ = ["Settings", "bundled_path", "load_settings", "setting_origin"]

# Secrets are read from the environment only, so that a config file can be shared or committed.
SECRET_KEYS = (
    "smtp.password",
    "secret_key",
    "secret_keys",
    "bounces.imap_password",
    "bounces.mailgun_signing_key",
)
PACKAGE_DIR = Path(__file__).resolve().parent
EXAMPLE_FROM = "newsletter@diffusion.example.org"


def bundled_path(name: str) -> Path:
    """A folder shipped with Diffusion: the source checkout's copy, else the installed wheel's."""
    checkout = PACKAGE_DIR.parent / name
    return checkout if checkout.is_dir() else PACKAGE_DIR / "_bundled" / name


class Settings(BaseSettings):
    """Every setting of Diffusion, with its default and what it is for."""

    model_config = SettingsConfigDict(
        env_prefix="DIFFUSION_", env_nested_delimiter="__", extra="forbid"
    )

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
    require_approval: bool = Field(
        False, description="Editions wait as drafts until an editor approves them."
    )
    digest_max_items: int = Field(
        40, ge=1, description="Items shown in one email; the rest are linked online."
    )
    templates_dir: Path | None = Field(None, description="Email templates; default: bundled.")
    routing_dir: Path | None = Field(
        None, description="Routing rules (audiences.toml); default: home/routing, else bundled."
    )
    smtp: SmtpSettings = Field(default_factory=SmtpSettings, description=SmtpSettings.__doc__)
    send: SendSettings = Field(default_factory=SendSettings, description=SendSettings.__doc__)
    dkim: DkimSettings = Field(default_factory=DkimSettings, description=DkimSettings.__doc__)
    collect: CollectSettings = Field(
        default_factory=CollectSettings, description=CollectSettings.__doc__
    )
    web: WebSettings = Field(default_factory=WebSettings, description=WebSettings.__doc__)
    schedule: ScheduleSettings = Field(
        default_factory=ScheduleSettings, description=ScheduleSettings.__doc__
    )
    bounces: BounceSettings = Field(
        default_factory=BounceSettings, description=BounceSettings.__doc__
    )
    subscribe: SubscribeSettings = Field(
        default_factory=SubscribeSettings, description=SubscribeSettings.__doc__
    )
    feeds: FeedSettings = Field(default_factory=FeedSettings, description=FeedSettings.__doc__)
    senders: list[SenderIdentity] = Field(
        [],
        description="[[senders]]: an audience's (or an audience key's) own From name and "
        "address, Reply-To and relay; the most specific entry wins, else from_address.",
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
        path = configfile.config_file(home)
        return (
            configfile.Nested(settings_cls, init_settings),
            env_settings,  # DIFFUSION_TIMEZONE, DIFFUSION_SMTP__URL
            configfile.FlatEnvironment(settings_cls),  # DIFFUSION_SMTP_URL
            configfile.FileSource(settings_cls, path, SECRET_KEYS),
        )

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
        check_senders(self.senders, self.languages, self.smtp.url)
        if urlsplit(self.base_url).scheme not in ("http", "https") or not host_of(self.base_url):
            raise ValueError(
                f"base_url: {self.base_url!r} is not an http:// or https:// address with a host"
            )
        for key in ("from_address", "reply_to", "unsubscribe_mailto"):
            value = getattr(self, key)
            if value is not None and not is_address(value):
                raise ValueError(f"{key}: {value!r} is not an email address (name@domain)")
        if not re.fullmatch(
            r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9-]+)+", self.list_id
        ):
            raise ValueError(f"list_id: {self.list_id!r} is not a domain name (lists.example.org)")
        return self

    def sender_for(self, audience: str, key: str = "") -> SenderIdentity | None:
        """The [[senders]] entry of an audience's editions: audience and key, else audience
        alone; None: the global from_address, sender_names and reply_to."""
        match = None
        for sender in self.senders:
            if sender.audience == audience and sender.key == key:
                return sender
            if sender.audience == audience and not sender.key:
                match = sender
        return match

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some settings changed, by flat (`smtp_url`) or sectioned name.

        Like model_copy, the values are not validated: for values already checked (a flag's,
        a test's). The signing keys already read are kept.
        """
        nested = configfile.nest(type(self), changes, "Settings.replace")
        update: dict[str, Any] = {}
        for name, value in nested.items():
            section = getattr(self, name, None)
            if isinstance(section, Section) and isinstance(value, dict):
                update[name] = section.model_copy(update=value)
            else:
                update[name] = value
        return self.model_copy(update=update)

    def sending_problems(self) -> list[str]:
        """Why real mail sent through SMTP with these settings would be broken; [] when fine."""
        if not self.smtp.url or self.send.allow_test_settings:
            return []
        problems = []
        host = host_of(self.base_url)
        if host == "localhost" or host.endswith(".localhost") or is_loopback(host):
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
        local = self.home / "routing"
        return local if (local / "audiences.toml").is_file() else bundled_path("routing")

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

        Read once (links are signed per recipient; copies made by `replace` keep them);
        ConfigError (naming the variable or the file) when a key is missing, empty or shorter
        than 32 bytes. The file is made by `diffusion init`, never here: a missing file where
        links were already mailed must not silently become a new key.
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


configfile.dotted_to_flat.update(
    {f"{section}.{key}": flat for flat, (section, key) in configfile.flat_names(Settings).items()}
)


def _key_of(message: str) -> tuple[str, str]:
    """A check across keys says first which key it is about: (key, rest of the message)."""
    named = re.match(r"([\w.]+)(?:,|:)", message)
    key = named.group(1) if named else ""
    if key.partition(".")[0] in Settings.model_fields or key in configfile.dotted_to_flat:
        return key, message[len(key) :].lstrip(":, ")
    return "", message


def load_settings(**overrides: Any) -> Settings:
    """Settings from diffusion.toml, then the environment, then the given flags (None = unset).

    Flags may use the flat names (`smtp_url=`) or give a section (`smtp={"url": ...}`).
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = str(err["msg"]).removeprefix("Value error, ")
            parts = [str(part) for part in err["loc"]]
            if not parts and message.startswith("DIFFUSION_"):
                problems.append(message)  # a key check names its variable itself
                continue
            if parts:
                key = ".".join(parts)
            else:
                key, message = _key_of(message)
            if not key:
                problems.append(f"settings: {message}")
                continue
            section = parts[0] if parts else key.split(".")[0]
            named = ".".join(parts[:2]) if section in _SECTIONS else section
            origin, spelled = configfile.locate(named or key, given.get("home"), given)
            if spelled != named:  # the flat name the setting was given by
                key = spelled + key[len(named) :]
            problems.append(f"{origin}: {key}: {message}")
        raise ConfigError("; ".join(problems)) from exc


_SECTIONS = {
    name
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, Section)
}
