"""What a send run did, added up across workers and told in one line."""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SendSummary:
    """What one send run did: messages sent, deferred for a retry, failed for good."""

    sent: int = 0
    deferred: int = 0  # rows left failed_temporary, due again later
    failed: int = 0  # rows that became failed_permanent in this run
    skipped: int = 0  # subscribers no longer active when their turn came
    requeued: int = 0  # rows put back in the queue after a relay fault, attempts untouched
    editions_sent: list[int] = field(default_factory=list)
    # Why the send stopped by itself (relay down, database gone), in one line; None when it
    # ran out of work or was asked to stop.
    halted: str | None = None
    database_down: bool = False
    reasons: dict[str, int] = field(default_factory=dict)  # deferral/failure reason -> count
    # A [[senders]] identity's own relay that kept failing (host:port): its last fault, and how
    # many of its messages stay queued for the next send while every other message went out.
    held_back: dict[str, tuple[str, int]] = field(default_factory=dict)

    def add(self, other: "SendSummary") -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.skipped += other.skipped
        self.requeued += other.requeued
        self.halted = self.halted or other.halted
        self.database_down = self.database_down or other.database_down
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count
        for relay, (fault, count) in other.held_back.items():
            self.held_back[relay] = (fault, self.held_back.get(relay, ("", 0))[1] + count)

    @property
    def processed(self) -> int:
        return self.sent + self.failed + self.skipped

    def summary(self) -> str:
        """One line for logs and the scheduler's job history."""
        line = (
            f"{self.sent} sent, {self.deferred} deferred, {self.failed} failed, "
            f"{self.skipped} skipped, {len(self.editions_sent)} editions finished"
        )
        for relay in self.held_back:
            line += f"; {self.relay_down(relay)}"
        return f"{line}; stopped: {self.halted}" if self.halted else line

    def relay_down(self, relay: str) -> str:
        """One line on a sender identity's relay that failed, from `held_back`."""
        fault, count = self.held_back[relay]
        return (
            f"the relay {relay} of a [[senders]] entry kept failing ({fault}); "
            f"its {count} messages stay queued for the next send"
        )


Progress = Callable[[SendSummary], None]
