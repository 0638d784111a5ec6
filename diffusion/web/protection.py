"""Protection of the subscriber forms: CSRF tokens and per-address, per-client rate limits."""

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from diffusion.tokens import Keys, current_key

CSRF_COOKIE = "diffusion_csrf"
# Over https the cookie is `__Host-` prefixed: browsers then accept it only Secure, for this
# host and path /, so a sibling subdomain cannot plant one. Over http (a laptop) they would
# refuse such a cookie, so it keeps its plain name there.
SECURE_CSRF_COOKIE = "__Host-" + CSRF_COOKIE
CSRF_FIELD = "csrf_token"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{32}")


def csrf_cookie_name(https: bool) -> str:
    return SECURE_CSRF_COOKIE if https else CSRF_COOKIE


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(24)


def usable_cookie(value: str | None) -> str | None:
    """The cookie as we set it, or None when missing, empty or not ours (planted, truncated):
    the page then sets a fresh one rather than pairing its form with a value that fails."""
    return value if value is not None and _COOKIE_VALUE.fullmatch(value) else None


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
        self._next_sweep = clock() + window

    def __len__(self) -> int:
        """The keys remembered: those with an event in the last window, and not many more."""
        return len(self._events)

    def allow(self, key: str) -> bool:
        """Count one event for `key`; False (and not counted) when the limit is reached."""
        now = self._clock()
        with self._lock:
            if now >= self._next_sweep:
                self._forget_expired(now)
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def _forget_expired(self, now: float) -> None:
        # Once a window: each key is looked at once per window, so the cost of a check stays
        # the same however many addresses and clients came and went.
        expired = [
            k for k, events in self._events.items() if not events or events[-1] <= now - self.window
        ]
        for key in expired:
            del self._events[key]
        self._next_sweep = now + self.window
