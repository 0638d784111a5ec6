"""Signed, expiring tokens for the links that change a subscription.

A token naming only a subscriber is that id signed with a timestamp ("42.<time>.<signature>"):
the send loop signs two of them per message, and itsdangerous' TimestampSigner does it in a
seventh of the time its JSON serializer takes. A token with more claims (a confirmation's date)
is a serialized JSON object. Both are read back by `read_token`, whichever form a link carries.

A key is one key or several, current first (settings.signing_keys()): the current one signs,
every one verifies, so that links signed before a key rotation still work.
"""

from functools import lru_cache
from typing import Any, TypeAlias

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from diffusion.errors import InvalidToken

# One salt per purpose, so that a confirmation token cannot be replayed as an unsubscribe token.
PURPOSES = ("confirm", "unsubscribe", "preferences")
# One key, or the keys current first.
Keys: TypeAlias = str | tuple[str, ...]


def oldest_first(secret: Keys) -> list[str]:
    """The keys in itsdangerous' order: it signs with the last and verifies with every one."""
    return [secret] if isinstance(secret, str) else list(reversed(secret))


def current_key(secret: Keys) -> str:
    return secret if isinstance(secret, str) else secret[0]


def _salt(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {PURPOSES}")
    return f"diffusion.{purpose}"


# Building a signer derives keys: build each once per key and purpose.
@lru_cache(maxsize=32)
def _serializer(secret: Keys, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(oldest_first(secret), salt=_salt(purpose))


@lru_cache(maxsize=32)
def _signer(secret: Keys, purpose: str) -> TimestampSigner:
    return TimestampSigner(oldest_first(secret), salt=_salt(purpose))


def make_token(secret: Keys, purpose: str, subscriber_id: int, **extra: Any) -> str:
    """A URL-safe token naming the subscriber (and any extra claims) for one purpose."""
    if not extra:
        return _signer(secret, purpose).sign(str(subscriber_id)).decode("ascii")
    return _serializer(secret, purpose).dumps({"sub": subscriber_id, **extra})


def read_token(
    secret: Keys, purpose: str, token: str, max_age_seconds: int | None = None
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
