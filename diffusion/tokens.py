"""Signed, expiring tokens for the links that change a subscription.

A token naming only a subscriber is that id signed with a timestamp ("42.<time>.<signature>"):
the send loop signs two of them per message, and itsdangerous' TimestampSigner does it in a
seventh of the time its JSON serializer takes. A token with more claims (a confirmation's date)
is a serialized JSON object. Both are read back by `read_token`, whichever form a link carries.
"""

from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from diffusion.errors import InvalidToken

# One salt per purpose, so that a confirmation token cannot be replayed as an unsubscribe token.
PURPOSES = ("confirm", "unsubscribe", "preferences")


def _salt(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {PURPOSES}")
    return f"diffusion.{purpose}"


# Building a signer derives keys: build each once per key and purpose.
@lru_cache(maxsize=32)
def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_salt(purpose))


@lru_cache(maxsize=32)
def _signer(secret: str, purpose: str) -> TimestampSigner:
    return TimestampSigner(secret, salt=_salt(purpose))


def make_token(secret: str, purpose: str, subscriber_id: int, **extra: Any) -> str:
    """A URL-safe token naming the subscriber (and any extra claims) for one purpose."""
    if not extra:
        return _signer(secret, purpose).sign(str(subscriber_id)).decode("ascii")
    return _serializer(secret, purpose).dumps({"sub": subscriber_id, **extra})


def read_token(
    secret: str, purpose: str, token: str, max_age_seconds: int | None = None
) -> dict[str, Any]:
    """The claims of a token; raises InvalidToken if tampered with, malformed or expired."""
    try:
        if token.partition(".")[0].isdigit():  # a bare subscriber id; JSON starts with "ey"
            value = _signer(secret, purpose).unsign(token, max_age=max_age_seconds)
            claims: Any = {"sub": int(value)}
        else:
            claims = _serializer(secret, purpose).loads(token, max_age=max_age_seconds)
    except SignatureExpired as exc:
        raise InvalidToken(f"this {purpose} link has expired; ask for a new one") from exc
    except (BadSignature, ValueError) as exc:
        raise InvalidToken(f"this {purpose} link is not valid") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), int):
        raise InvalidToken(f"this {purpose} link is not valid")
    return claims
