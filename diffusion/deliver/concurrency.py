"""How many connections a relay gets: grown while throughput grows, held when it says enough."""

import asyncio
import re
import time

import aiosmtplib
from aiosmtplib.status import SMTPStatus

TOO_MANY = re.compile(r"too many|connection limit|concurren", re.IGNORECASE)


def too_many(exc: aiosmtplib.SMTPResponseException) -> bool:
    """Whether a refusal while connecting says the relay has enough connections from us.

    Postfix answers the greeting "421 4.7.0 ... Too many concurrent SMTP connections"; other
    relays a 4xx naming the limit at EHLO or AUTH.
    """
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return exc.code == SMTPStatus.domain_unavailable or bool(TOO_MANY.search(exc.message))
    return 400 <= exc.code < 500 and bool(TOO_MANY.search(exc.message))


class ConnectionLimit:
    """How many of the pool's connections may be open now, chosen by the relay's answers.

    It starts at four (Postfix opens five at once to a destination, its
    initial_destination_concurrency) and doubles, up to the ceiling, while each doubling raises
    the messages answered a second by a tenth or more: past the network's limit more
    connections only cost the relay. A connection refused as one too many sets it to those open
    then, for the rest of the send (Postfix and listmonk keep per-destination concurrency the
    same way).
    """

    START = 4  # two cost a 2,000-message send at 20 ms a round trip a tenth of its time
    WINDOW = 4  # messages per allowed connection between two measurements: a few round trips
    GROWTH = 1.1

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.allowed = min(ceiling, self.START)
        self.growing = self.allowed < ceiling
        self.holding = 0  # connections open, or about to be, each by one driver
        self._changed = asyncio.Event()
        self._since = time.monotonic()
        self._answered = 0
        self._rate: float | None = None

    def answered(self) -> None:
        """One more message answered by the relay (any answer but a fault of its own)."""
        if not self.growing:
            return
        self._answered += 1
        if self._answered < self.WINDOW * self.allowed:
            return
        now = time.monotonic()
        rate = self._answered / max(now - self._since, 1e-6)
        if self._rate is None or rate >= self._rate * self.GROWTH:
            self.allowed = min(self.ceiling, self.allowed * 2)
            self.growing = self.allowed < self.ceiling
            self._changed.set()
        else:
            self.growing = False
        self._rate, self._since, self._answered = rate, now, 0

    def crowded(self, open_now: int) -> bool:
        """The relay refused one more connection: keep to those open. False if none is."""
        self.growing = False
        if open_now == 0:
            return False
        self.allowed = min(self.allowed, open_now)
        return True

    @property
    def over(self) -> bool:
        return self.holding > self.allowed

    async def acquire(self) -> None:
        """Until one more connection may be open; then it is counted until `release`."""
        while self.holding >= self.allowed:
            self._changed.clear()
            await self._changed.wait()
        self.holding += 1

    def release(self) -> None:
        self.holding -= 1
        self._changed.set()
