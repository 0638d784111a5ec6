"""The plain data the send loop and its outbox exchange: claimed rows and their outcomes."""

from dataclasses import dataclass

from diffusion.contracts import Recipient


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
