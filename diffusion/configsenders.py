"""The [[senders]] entries: an audience's (or one key's) own From, Reply-To and relay, and the
relay's password from DIFFUSION_SENDER_PASSWORD_<AUDIENCE>[_<KEY>]."""

import os
import re
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from diffusion.configsections import is_address, relay_urls
from diffusion.models import AUDIENCES


class SenderIdentity(BaseModel):
    """`[[senders]]`: the From, Reply-To and relay of one audience's editions (or one key's).

    An edition of the audience (and key, when given) goes out from `address` with `name`
    (a string, or a table per language), through `relay` alone when given: the shared relays
    may not be authorised to send for the office's domain. The relay's password comes from the
    environment only, from the variable `password_variable` names.
    """

    model_config = ConfigDict(extra="forbid")

    audience: str = Field(description="The audience whose editions it sends (field_office...).")
    key: str = Field(
        "", description="Only this key of the audience (an office code); default: all."
    )
    name: str | dict[str, str] = Field(
        description='The From display name, or one per language: {en = "...", fr = "..."}.'
    )
    address: str = Field(description="The From address; also the domain of its Message-IDs.")
    reply_to: str | None = Field(None, description="Reply-To address, if other than From.")
    relay: str | None = Field(
        None,
        description="smtp://[user@]host:port or smtps://...: the only relay its editions go "
        "through; default: the shared smtp.url relays.",
    )
    _password: SecretStr | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _no_secret(cls, data: object) -> object:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "password: a secret never goes in the file; set the environment variable "
                f"{password_variable(str(data.get('audience', '')), str(data.get('key', '')))}"
            )
        return data

    @field_validator("audience")
    @classmethod
    def _check_audience(cls, audience: str) -> str:
        if audience not in AUDIENCES:
            raise ValueError(
                f"unknown audience {audience!r}; expected one of {', '.join(AUDIENCES)}"
            )
        return audience

    @field_validator("address", "reply_to")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is not None and not is_address(value):
            raise ValueError(f"{value!r} is not an email address (name@domain)")
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str | dict[str, str]) -> str | dict[str, str]:
        if not (name if isinstance(name, str) else any(name.values())):
            raise ValueError("empty: give the From display name")
        return name

    @field_validator("relay")
    @classmethod
    def _check_relay(cls, relay: str | None, info: ValidationInfo) -> str | None:
        if relay is None:
            return None
        relays = relay_urls(relay)
        if len(relays) != 1 or "?" in relay:
            raise ValueError(f"{relay!r}: one relay, smtp://host:port, without weight")
        if urlsplit(relay).password is not None:
            variable = password_variable(info.data.get("audience", ""), info.data.get("key", ""))
            raise ValueError(f"a password never goes in the file; set the variable {variable}")
        return relay

    @model_validator(mode="after")
    def _read_password(self) -> "SenderIdentity":
        password = os.environ.get(password_variable(self.audience, self.key))
        self._password = SecretStr(password) if password else None
        return self

    @property
    def password(self) -> SecretStr | None:
        """The relay's password, from the environment (see password_variable)."""
        return self._password

    def display_name(self, language: str, default_language: str) -> str:
        """The From name in `language` (or its base language), else the default language's."""
        if isinstance(self.name, str):
            return self.name
        for code in (language, language.split("-")[0], default_language):
            if self.name.get(code):
                return self.name[code]
        return next(value for value in self.name.values() if value)


def password_variable(audience: str, key: str = "") -> str:
    """DIFFUSION_SENDER_PASSWORD_FIELD_OFFICE_DHAKA: where a sender's relay password is read."""
    words = re.sub(r"[^A-Za-z0-9]+", "_", f"{audience}_{key}" if key else audience)
    return f"DIFFUSION_SENDER_PASSWORD_{words.strip('_').upper()}"


def check_senders(
    senders: list[SenderIdentity], languages: list[str], smtp_url: str | None
) -> None:
    """The checks across entries and settings: one entry an audience and key, names in
    `languages`, a relay only when smtp.url is set. ValueError names the entry (senders.N)."""
    seen: set[tuple[str, str]] = set()
    for index, sender in enumerate(senders):
        where = f"senders.{index}"
        if (sender.audience, sender.key) in seen:
            raise ValueError(
                f"{where}: a second entry for audience {sender.audience!r}"
                + (f" key {sender.key!r}" if sender.key else "")
            )
        seen.add((sender.audience, sender.key))
        if isinstance(sender.name, dict):
            for code in sender.name:
                if code not in languages:
                    raise ValueError(f"{where}.name: {code!r} is not in languages {languages}")
        if sender.relay and not smtp_url:
            raise ValueError(
                f"{where}.relay: smtp.url is not set, so mail goes to the maildir; set "
                "smtp.url for the other editions too"
            )
