"""Suppression: who may not be mailed without their own opt-in, erased addresses included."""

import hashlib
import hmac
from collections.abc import Sequence

from sqlmodel import Session

from diffusion.models import Person, Suppression

from .lookups import normalise_address
from .states import SUPPRESSED


def address_hash(email: str, secret: str) -> str:
    """The keyed hash an erased address is remembered by (HMAC-SHA256 of its normal form)."""
    if not secret:
        raise ValueError("a suppression hash needs a non-empty key")
    message = b"diffusion.suppression:" + normalise_address(email).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


# A key, or the keys in use (current first): an address erased under an older key is still
# recognised after the key is rotated.
Keys = str | Sequence[str]


def key_list(secret: Keys) -> tuple[str, ...]:
    return (secret,) if isinstance(secret, str) else tuple(secret)


def erased(session: Session, email: str, secret: Keys) -> bool:
    """Whether this address was erased (and so may not be added back by anyone but itself)."""
    return any(
        session.get(Suppression, address_hash(email, key)) is not None
        for key in key_list(secret)
        if key
    )


def suppression_of(session: Session, person: Person | None, email: str, secret: Keys) -> str | None:
    """Why the address may not be mailed without its own opt-in, or None.

    `secret` holds the keys erased addresses were hashed with (settings.signing_keys()); without
    one, erased addresses are not recognised (the web and CLI always give it).
    """
    if person is not None and person.status in SUPPRESSED:
        return person.status
    if person is None and secret and erased(session, email, secret):
        return "erased"
    return None
