"""DKIM signatures over the headers that mailbox providers check for bulk mail."""

from dataclasses import dataclass

import dkim

from diffusion.config import Settings
from diffusion.errors import ConfigError

# From, Subject and the RFC 8058 pair are required by the large mailbox providers.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


@dataclass(frozen=True)
class Signer:
    """Signs whole messages with one domain, selector and private key."""

    domain: bytes
    selector: bytes
    private_key: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> "Signer | None":
        """The signer the settings describe, or None when DKIM is not configured."""
        if not (settings.dkim.domain and settings.dkim.selector and settings.dkim.private_key_file):
            return None
        try:
            key = settings.dkim.private_key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"dkim_private_key_file: cannot read {settings.dkim.private_key_file}: "
                f"{exc.strerror}"
            ) from exc
        return cls(settings.dkim.domain.encode(), settings.dkim.selector.encode(), key)

    def sign(self, message: bytes) -> bytes:
        """The message with its DKIM-Signature header prepended."""
        try:
            signature = dkim.sign(
                message,
                self.selector,
                self.domain,
                self.private_key,
                include_headers=list(SIGNED_HEADERS),
            )
        except dkim.DKIMException as exc:
            raise ConfigError(
                f"DKIM signing with selector {self.selector!r} failed: {exc}"
            ) from exc
        return bytes(signature) + message
