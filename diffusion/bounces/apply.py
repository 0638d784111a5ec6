"""The one step that changes state from a recognised event: bounce score, bounced, complained,
unsubscribed, and the outbox row of the message that bounced.

The transition itself (`_transition`) is the only place that writes a person's status here;
it is meant to call the subscriptions module once that exists.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from diffusion.bounces.events import Event
from diffusion.collect.subscribers import find_subscriber
from diffusion.config import Settings
from diffusion.models import OutboxMessage, Subscriber

# Mailman counts at most one soft bounce a day: the notices of one failed delivery (a relay's,
# then the next hop's) are one bounce.
ONE_BOUNCE_PER = timedelta(days=1)
# The statuses each transition may start from: none of them brings anyone back (only the
# person's own new confirmation does), and a complaint outranks every other reason to stop.
_FROM = {
    "complained": ("active", "pending", "unsubscribed", "bounced"),
    "unsubscribed": ("active", "pending"),
    "bounced": ("active",),
}


@dataclass(frozen=True)
class Applied:
    """What one event did."""

    event: Event
    email: str | None = None  # whom it was attributed to; None: nobody of ours
    how: str = ""  # token, message-id, address
    marked: str | None = None  # the status it set
    note: str = ""


def _row_by_message_id(session: Session, message_id: str | None) -> OutboxMessage | None:
    if not message_id:
        return None
    return session.exec(select(OutboxMessage).where(OutboxMessage.message_id == message_id)).first()


def _last_row(session: Session, subscriber_id: int, edition_id: int | None) -> OutboxMessage | None:
    query = select(OutboxMessage).where(OutboxMessage.subscriber_id == subscriber_id)
    if edition_id is not None:
        query = query.where(OutboxMessage.edition_id == edition_id)
    return session.exec(query.order_by(col(OutboxMessage.id).desc())).first()


def attribute(
    session: Session, event: Event
) -> tuple[Subscriber | None, OutboxMessage | None, str]:
    """Who an event is about: a verified token, else our Message-ID, else the report's recipient
    field, and then only someone we have mailed (never an address merely named in a text)."""
    if event.subscriber_id is not None:
        subscriber = session.get(Subscriber, event.subscriber_id)
        if subscriber is not None:
            return subscriber, _last_row(session, event.subscriber_id, event.edition_id), "token"
    row = _row_by_message_id(session, event.message_id)
    if row is not None:
        return session.get(Subscriber, row.subscriber_id), row, "message-id"
    if event.address:
        subscriber = find_subscriber(session, event.address)
        if subscriber is not None and subscriber.id is not None:
            row = _last_row(session, subscriber.id, None)
            if row is not None:
                return subscriber, row, "address"
    return None, None, ""


def _transition(
    session: Session, subscriber: Subscriber, status: str, *, event: Event, now: datetime
) -> bool:
    """Set a person's status if the rules allow it; whether it changed.

    The one call to re-point at the subscriptions module when it lands: there, `bounced` is
    `transition(..., "bounced", action="bounce", origin=Origin.bounce(event.why))`,
    `complained` is `mark_complained(..., origin=Origin.complaint(event.why))` and
    `unsubscribed` is `unsubscribe(..., origin=Origin("email", event.why))`.
    """
    if subscriber.status not in _FROM[status]:
        return False
    subscriber.status = status
    subscriber.status_changed_at = now
    session.add(subscriber)
    return True


def _fail_row(row: OutboxMessage | None, why: str, now: datetime) -> None:
    if row is None or row.state not in ("sent", "sending", "failed_temporary"):
        return
    row.state = "failed_permanent"
    row.last_error = f"bounce: {why}"[:1000]
    row.next_attempt_at = None
    row.updated_at = now


def _score(subscriber: Subscriber, settings: Settings, now: datetime) -> str:
    """Add a soft bounce to the score as Mailman does; what happened to it."""
    last = subscriber.last_bounce_at
    if last is not None and now - last < ONE_BOUNCE_PER:
        return f"score {subscriber.soft_bounces} (a soft bounce counted already today)"
    if last is not None and now - last > timedelta(days=settings.bounce_quiet_days):
        subscriber.soft_bounces = 0  # quiet long enough: the old bounces are forgiven
    subscriber.soft_bounces += 1
    subscriber.last_bounce_at = now
    return f"score {subscriber.soft_bounces}/{settings.soft_bounce_limit}"


def apply(session: Session, event: Event, settings: Settings, *, now: datetime) -> Applied:
    """Record one event; a delay, an auto-reply or a reply changes nothing."""
    if event.kind not in ("hard", "soft", "complaint", "unsubscribe"):
        return Applied(event, note="never counted")
    subscriber, row, how = attribute(session, event)
    if subscriber is None:
        return Applied(event, note="names no one we have mailed")
    marked = None
    note = ""
    if event.kind == "hard":
        _fail_row(row, event.why, now)
        marked = (
            "bounced" if _transition(session, subscriber, "bounced", event=event, now=now) else None
        )
    elif event.kind == "soft":
        note = _score(subscriber, settings, now)
        if subscriber.soft_bounces >= settings.soft_bounce_limit:
            bounced = _transition(session, subscriber, "bounced", event=event, now=now)
            marked = "bounced" if bounced else None
    else:
        status = "complained" if event.kind == "complaint" else "unsubscribed"
        marked = status if _transition(session, subscriber, status, event=event, now=now) else None
    session.add(subscriber)
    if row is not None:
        session.add(row)
    return Applied(event, subscriber.email, how, marked, note)
