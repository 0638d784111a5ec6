"""What the send loop and its outbox exchange: claimed rows, their outcomes, and the interface
the loop asks of an outbox (deliver.store.DatabaseOutbox is the database one)."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from diffusion.contracts import Recipient
from diffusion.models import Edition


@dataclass(slots=True)
class Claimed:
    """A claimed outbox row with what sending needs of its subscriber."""

    outbox_id: int
    edition_id: int
    attempts: int
    message_id: str | None  # None on rows queued before ids were decided at enqueueing
    recipient: Recipient
    status: str  # the subscriber's when the row was claimed: only "active" is sent


@dataclass(slots=True)
class Result:
    """The outcome of one claimed row, to be recorded."""

    outbox_id: int
    attempts: int  # before this attempt
    # "sent", "temporary", "permanent", "skipped" (subscriber no longer active), or "relay"
    # (the relay failed, not the recipient: back to the queue with its attempts untouched)
    kind: str
    reply: str = ""
    message_id: str | None = None  # to store, when the row had none yet
    relay: str | None = None  # host:port of the relay that took it


class StopFlag(Protocol):
    """A threading.Event, multiprocessing.Event or anything else that says "stop claiming"."""

    def is_set(self) -> bool: ...


class Outbox(Protocol):
    """What the loop asks of the queue; the database one is deliver.store.DatabaseOutbox.

    Every method may raise OutboxUnavailable (the store stopped answering): the loop then
    stops sending, keeps its results and asks again with backoff.
    """

    def claim(self, worker: str, *, limit: int, now: datetime) -> list[Claimed]:
        """Up to `limit` due rows, now held by `worker`."""
        ...

    def edition(self, edition_id: int) -> Edition: ...

    def record(self, worker: str, results: Sequence[Result], *, now: datetime) -> None:
        """Write outcomes, only over rows `worker` still holds."""
        ...

    def renew(self, worker: str, outbox_ids: Collection[int], *, now: datetime) -> set[int]:
        """Extend the lease of these rows; returns those `worker` still holds."""
        ...

    def release(self, worker: str, outbox_ids: Collection[int], *, now: datetime) -> None:
        """Give held rows back to the queue, unsent."""
        ...

    def release_others(self, worker: str, keep: Collection[int], *, now: datetime) -> int:
        """Give back every row `worker` holds beyond `keep` (claims whose answer was lost)."""
        ...

    def reclaim(self, *, now: datetime) -> int:
        """Queue again the rows whose holder's lease ran out or whose process is gone."""
        ...

    def next_retry(self) -> datetime | None:
        """When the earliest deferred row is due."""
        ...
