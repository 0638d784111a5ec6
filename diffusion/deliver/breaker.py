"""The breaker that stops a send when the relay, not a recipient, keeps failing."""

from diffusion.deliver.outcome import Outcome


class Breaker:
    """Opens after `limit` relay-level failures in a row; any answer about a recipient resets it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failures = 0
        self.reason: str | None = None

    def observe(self, outcome: Outcome) -> None:
        if outcome.kind != "relay":
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.limit and self.reason is None:
            self.reason = outcome.reply

    @property
    def open(self) -> bool:
        return self.reason is not None
