"""The plain events recognition produces: who, what and why; `apply` turns them into state."""

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "hard",  # a permanent failure: marks the person bounced at once
    "soft",  # a failure after retries (mailbox full...): adds to the bounce score
    "delay",  # still trying: never marks anyone
    "complaint",  # marked as spam (ARF, provider event): suppressed like an unsubscribe
    "unsubscribe",  # asked by email (mailto: List-Unsubscribe) or by a provider
    "auto_reply",  # vacation, out of office: never counts
    "not_bounce",  # a reply, or anything else: never counts
]
COUNTED: frozenset[str] = frozenset({"hard", "soft", "complaint", "unsubscribe"})


@dataclass(frozen=True)
class Event:
    """One thing a report says about one recipient.

    `subscriber_id` comes from a verified token (VERP, mailto) or a provider's own field;
    `address` from a report's recipient field; `message_id` from the returned message's header.
    """

    kind: Kind
    why: str  # what recognised it, and the report's words: "dsn 5.1.1 smtp; 550 no such user"
    via: str  # verp, dsn, flufl:<detector>, arf, mailto, ses, mailgun, headers
    subscriber_id: int | None = None
    edition_id: int | None = None
    address: str | None = None
    message_id: str | None = None

    def with_identity(self, subscriber_id: int, edition_id: int | None) -> "Event":
        """The same event, attributed by a verified token rather than by the report's words."""
        return Event(
            self.kind,
            self.why,
            self.via,
            subscriber_id,
            edition_id,
            self.address,
            self.message_id,
        )


@dataclass(frozen=True)
class Recognised:
    """What one report is: its events, or why it gives none."""

    events: tuple[Event, ...] = ()
    skipped: str = ""  # why nothing in it counts
