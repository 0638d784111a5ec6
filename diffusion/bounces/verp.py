"""Signed return addresses: `bounces+<token>@domain` (VERP) and `unsubscribe+<token>@domain`.

A token is short, because a local part holds at most 64 octets (RFC 5321 4.5.3.1.1), and
lower-case, because some relays fold the case of the addresses they return mail to. It carries
ids and a truncated HMAC-SHA256 (80 bits) under a key per purpose: a bounce token can never
pass for an unsubscribe token, nor the reverse.
"""

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from functools import lru_cache

from diffusion.config import Settings

BOUNCE_PURPOSE, UNSUBSCRIBE_PURPOSE = "verp", "unsubscribe-mailto"
# The headers where a delivering MTA writes the envelope recipient, then the visible ones.
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_SIGNATURE_CHARS = 16
_TOKEN = re.compile(r"^(?:(\d{1,12})-)?(\d{1,12})-([a-z2-7]{16})$")


@dataclass(frozen=True)
class Claim:
    """What a verified token says: who, and for a bounce token which edition."""

    purpose: str
    subscriber_id: int
    edition_id: int | None = None


@lru_cache(maxsize=32)
def _mac(secret: str, purpose: str) -> "hmac.HMAC":
    return hmac.new(f"diffusion.{purpose}:{secret}".encode(), digestmod=hashlib.sha256)


def _signature(secret: str, purpose: str, body: str) -> str:
    mac = _mac(secret, purpose).copy()  # copying the keyed state skips the key schedule
    mac.update(body.encode("ascii"))
    return base64.b32encode(mac.digest()[:10]).decode("ascii").lower()


def make(secret: str, purpose: str, subscriber_id: int, edition_id: int | None = None) -> str:
    body = f"{subscriber_id}" if edition_id is None else f"{edition_id}-{subscriber_id}"
    return f"{body}-{_signature(secret, purpose, body)}"


def read(secret: str, purpose: str, token: str) -> Claim | None:
    """The claim of a token, or None if it is forged, mangled or of another purpose."""
    match = _TOKEN.match(token.lower())
    if match is None:
        return None
    edition, subscriber, signature = match.groups()
    if (edition is None) != (purpose == UNSUBSCRIBE_PURPOSE):
        return None
    body = token.lower().rpartition("-")[0]
    if not hmac.compare_digest(signature, _signature(secret, purpose, body)):
        return None
    return Claim(purpose, int(subscriber), int(edition) if edition else None)


def _split(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain.lower()


def bounce_domain(settings: Settings) -> str:
    return (settings.bounce_domain or _split(settings.from_address)[1]).lower()


def bounce_address(settings: Settings, secret: str, subscriber_id: int, edition_id: int) -> str:
    """The envelope sender (Return-Path) of one edition to one subscriber."""
    token = make(secret, BOUNCE_PURPOSE, subscriber_id, edition_id)
    return f"{settings.bounce_local_part}+{token}@{bounce_domain(settings)}"


def unsubscribe_address(settings: Settings, secret: str, subscriber_id: int) -> str:
    """The per-recipient address of the mailto: List-Unsubscribe link."""
    local, domain = _split(settings.unsubscribe_mailto)
    return f"{local}+{make(secret, UNSUBSCRIBE_PURPOSE, subscriber_id)}@{domain}"


def _purposes(settings: Settings) -> dict[tuple[str, str], str]:
    unsubscribe_local, unsubscribe_domain = _split(settings.unsubscribe_mailto)
    return {
        (settings.bounce_local_part.lower(), bounce_domain(settings)): BOUNCE_PURPOSE,
        (unsubscribe_local.lower(), unsubscribe_domain): UNSUBSCRIBE_PURPOSE,
    }


def claim_of_address(settings: Settings, secret: str, address: str) -> Claim | None:
    """The verified claim of one of our signed addresses; None for any other address."""
    local, domain = _split(address.strip().strip("<>"))
    base, plus, token = local.partition("+")
    purpose = _purposes(settings).get((base.lower(), domain))
    if not plus or purpose is None:
        return None
    return read(secret, purpose, token)


def claims_of(settings: Settings, secret: str, message: Message) -> list[Claim]:
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
