"""Protection of the subscriber forms: CSRF tokens and per-address, per-client rate limits."""

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from diffusion.tokens import Keys, current_key

CSRF_COOKIE = "diffusion_csrf"
CSRF_FIELD = "csrf_token"


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(secret: Keys, cookie: str) -> str:
    """The form field that goes with the cookie: an HMAC a third-party site cannot compute.

    Double submit with a signed value: a forged cross-site POST carries the victim's cookie but
    cannot know the field, and a cookie planted by a sibling subdomain has no matching HMAC.
    """
    key = current_key(secret).encode()
    return hmac.new(key, f"csrf|{cookie}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: Keys, cookie: str | None, field: object) -> bool:
    if not cookie or not isinstance(field, str):
        return False
    return hmac.compare_digest(csrf_token(secret, cookie), field)


class RateLimiter:
    """At most `limit` events per key within `window` seconds, counted in this process's memory.

    One `diffusion serve` process is the expected web front; behind several processes each keeps
    its own counts, so the effective limit is multiplied by their number.
    """

    def __init__(
        self, limit: int, window: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one event for `key`; False (and not counted) when the limit is reached."""
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            if len(self._events) > 100_000:  # forget idle keys so memory stays bounded
                for idle in [k for k, v in self._events.items() if not v]:
                    del self._events[idle]
            return True
