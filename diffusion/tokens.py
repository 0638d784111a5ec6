"""Signed, expiring tokens for the links that change a subscription."""

from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from diffusion.errors import InvalidToken

# One salt per purpose, so that a confirmation token cannot be replayed as an unsubscribe token.
PURPOSES = ("confirm", "unsubscribe", "preferences")


# Building a serializer derives keys; the send loop signs two links per message, so reuse them.
@lru_cache(maxsize=32)
def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {PURPOSES}")
    return URLSafeTimedSerializer(secret, salt=f"diffusion.{purpose}")


def make_token(secret: str, purpose: str, subscriber_id: int, **extra: Any) -> str:
    """A URL-safe token naming the subscriber (and any extra claims) for one purpose."""
    return _serializer(secret, purpose).dumps({"sub": subscriber_id, **extra})


def read_token(
    secret: str, purpose: str, token: str, max_age_seconds: int | None = None
) -> dict[str, Any]:
    """The claims of a token; raises InvalidToken if tampered with, malformed or expired."""
    try:
        claims = _serializer(secret, purpose).loads(token, max_age=max_age_seconds)
    except SignatureExpired as exc:
        raise InvalidToken(f"this {purpose} link has expired; ask for a new one") from exc
    except BadSignature as exc:
        raise InvalidToken(f"this {purpose} link is not valid") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), int):
        raise InvalidToken(f"this {purpose} link is not valid")
    return claims
