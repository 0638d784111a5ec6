"""Signed return addresses: `bounces+<token>@domain` (VERP) and `unsubscribe+<token>@domain`.

A token is short, because a local part holds at most 64 octets (RFC 5321 4.5.3.1.1), and
lower-case, because some relays fold the case of the addresses they return mail to. It carries
ids and an 80-bit keyed BLAKE2b MAC under a key per purpose: a bounce token can never
pass for an unsubscribe token, nor the reverse. Addresses are made with the current signing
key and read with every key in use, so that mail returned after a key rotation still counts.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from functools import lru_cache

from diffusion.config import Settings
from diffusion.tokens import Keys

BOUNCE_PURPOSE, UNSUBSCRIBE_PURPOSE = "verp", "unsubscribe-mailto"
# The headers where a delivering MTA writes the envelope recipient, then the visible ones.
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_TOKEN = re.compile(r"^(?:(\d{1,12})-)?(\d{1,12})-([0-9a-f]{20})$")


@dataclass(frozen=True)
class Claim:
    """What a verified token says: who, and for a bounce token which edition."""

    purpose: str
    subscriber_id: int
    edition_id: int | None = None


@lru_cache(maxsize=32)
def _key(secret: str, purpose: str) -> bytes:
    return hashlib.sha256(f"diffusion.{purpose}:{secret}".encode()).digest()


def _signature(secret: str, purpose: str, body: str) -> str:
    # Keyed BLAKE2b is a MAC in one call: a tenth of what HMAC's copy-update-digest costs.
    key = _key(secret, purpose)
    return hashlib.blake2b(body.encode("ascii"), key=key, digest_size=10).hexdigest()


def make(secret: str, purpose: str, subscriber_id: int, edition_id: int | None = None) -> str:
    body = f"{subscriber_id}" if edition_id is None else f"{edition_id}-{subscriber_id}"
    return f"{body}-{_signature(secret, purpose, body)}"


def read(secret: Keys, purpose: str, token: str) -> Claim | None:
    """The claim of a token, or None if it is forged, mangled or of another purpose."""
    match = _TOKEN.match(token.lower())
    if match is None:
        return None
    edition, subscriber, signature = match.groups()
    if (edition is None) != (purpose == UNSUBSCRIBE_PURPOSE):
        return None
    body = token.lower().rpartition("-")[0]
    keys = (secret,) if isinstance(secret, str) else secret
    if not any(hmac.compare_digest(signature, _signature(key, purpose, body)) for key in keys):
        return None
    return Claim(purpose, int(subscriber), int(edition) if edition else None)


class AddressMaker:
    """Both signed addresses of each recipient of one edition, with what is the same for all
    worked out once: the send loop makes two per message."""

    def __init__(
        self, settings: Settings, secret: str, edition_id: int, from_address: str | None = None
    ) -> None:
        self.edition_id = edition_id
        self.secret = secret
        self.bounce_prefix = f"{settings.bounces.local_part}+{edition_id}-"
        self.bounce_suffix = f"@{bounce_domain(settings, from_address)}"
        local, domain = _split(settings.unsubscribe_mailto)
        self.unsubscribe_prefix, self.unsubscribe_suffix = f"{local}+", f"@{domain}"

    def bounce(self, subscriber_id: int) -> str:
        body = f"{self.edition_id}-{subscriber_id}"
        signature = _signature(self.secret, BOUNCE_PURPOSE, body)
        return f"{self.bounce_prefix}{subscriber_id}-{signature}{self.bounce_suffix}"

    def unsubscribe(self, subscriber_id: int) -> str:
        body = str(subscriber_id)
        signature = _signature(self.secret, UNSUBSCRIBE_PURPOSE, body)
        return f"{self.unsubscribe_prefix}{body}-{signature}{self.unsubscribe_suffix}"


def _split(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain.lower()


def bounce_domain(settings: Settings, from_address: str | None = None) -> str:
    """bounces.domain, else the domain of the edition's From (from_address, or its sender's)."""
    return (settings.bounces.domain or _split(from_address or settings.from_address)[1]).lower()


def bounce_address(settings: Settings, secret: str, subscriber_id: int, edition_id: int) -> str:
    """The envelope sender (Return-Path) of one edition to one subscriber."""
    token = make(secret, BOUNCE_PURPOSE, subscriber_id, edition_id)
    return f"{settings.bounces.local_part}+{token}@{bounce_domain(settings)}"


def unsubscribe_address(settings: Settings, secret: str, subscriber_id: int) -> str:
    """The per-recipient address of the mailto: List-Unsubscribe link."""
    local, domain = _split(settings.unsubscribe_mailto)
    return f"{local}+{make(secret, UNSUBSCRIBE_PURPOSE, subscriber_id)}@{domain}"


def _purposes(settings: Settings) -> dict[tuple[str, str], str]:
    unsubscribe_local, unsubscribe_domain = _split(settings.unsubscribe_mailto)
    bounces = settings.bounces.local_part.lower()
    # An edition sent under a [[senders]] identity returns to bounces+...@ that identity's domain.
    purposes = {
        (bounces, bounce_domain(settings, sender.address)): BOUNCE_PURPOSE
        for sender in settings.senders
    }
    purposes[(bounces, bounce_domain(settings))] = BOUNCE_PURPOSE
    purposes[(unsubscribe_local.lower(), unsubscribe_domain)] = UNSUBSCRIBE_PURPOSE
    return purposes


def claim_of_address(settings: Settings, secret: Keys, address: str) -> Claim | None:
    """The verified claim of one of our signed addresses; None for any other address."""
    local, domain = _split(address.strip().strip("<>"))
    base, plus, token = local.partition("+")
    purpose = _purposes(settings).get((base.lower(), domain))
    if not plus or purpose is None:
        return None
    return read(secret, purpose, token)


def claims_of(settings: Settings, secret: Keys, message: Message) -> list[Claim]:
    """The verified claims of the addresses a message was delivered to, envelope first.

    Only the message's own headers are read, never its body: a returned copy of one of our
    messages quotes its List-Unsubscribe address, which must not unsubscribe anyone.
    """
    found: list[Claim] = []
    for header in ENVELOPE_HEADERS:
        values = [str(value) for value in message.get_all(header, [])]
        for _name, address in getaddresses(values):
            claim = claim_of_address(settings, secret, address)
            if claim is not None and claim not in found:
                found.append(claim)
    return found
