"""Who an edition comes from: its From name and address, Reply-To and relay, chosen once."""

from dataclasses import dataclass

from diffusion import i18n
from diffusion.config import Settings
from diffusion.models import Edition


@dataclass(frozen=True)
class Sender:
    """Who an edition comes from and through which relay: its audience's [[senders]] entry
    (audience and key, else audience), else from_address, sender_names and reply_to."""

    name: str
    address: str
    reply_to: str | None = None
    relay: str | None = None  # its own relay's URL; None: the shared relays

    @classmethod
    def of(cls, edition: Edition, settings: Settings) -> "Sender":
        own = settings.sender_for(edition.audience, edition.key)
        if own is None:
            name = i18n.sender_name(settings, edition.language)
            return cls(name, settings.from_address, settings.reply_to)
        name = own.display_name(edition.language, settings.default_language)
        return cls(name, own.address, own.reply_to, own.relay)
