"""Sending rate limits: token buckets per second and per hour."""

import asyncio
import time


class _Bucket:
    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate  # tokens per second
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = time.monotonic()

    def wait_time(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """Awaits until one more message may go: at most `per_second` and `per_hour` on average."""

    def __init__(self, per_second: float | None = None, per_hour: float | None = None) -> None:
        self._buckets = []
        if per_second:
            # A burst of one second's worth, so a connection pool does not start in lock-step.
            self._buckets.append(_Bucket(per_second, max(1.0, per_second)))
        if per_hour:
            self._buckets.append(_Bucket(per_hour / 3600.0, max(1.0, per_hour / 60.0)))
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        """Whether any limit is set: with none, callers need not await `acquire` at all."""
        return bool(self._buckets)

    async def acquire(self) -> None:
        if not self._buckets:
            return
        async with self._lock:
            for bucket in self._buckets:
                delay = bucket.wait_time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    bucket.tokens -= 1  # the token this wait was for; it refilled meanwhile
