"""The one step that changes state from a recognised event: bounce score, bounced, complained,
unsubscribed, and the outbox row of the message that bounced.

Statuses change only through the subscriptions module (`_transition`), which records a consent
event saying why (the report) and from where (a bounce, a complaint, an emailed unsubscribe).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from diffusion import subscriptions
from diffusion.bounces.events import Event
from diffusion.config import Settings
from diffusion.models import OutboxMessage, Person
from diffusion.subscriptions import Origin

# Mailman counts at most one soft bounce a day: the notices of one failed delivery (a relay's,
# then the next hop's) are one bounce.
ONE_BOUNCE_PER = timedelta(days=1)
# Only an active person can bounce: a bounce of mail sent before they left (or bounced
# already) must not rewrite why they stopped. A complaint outranks every other reason to stop
# (subscriptions.mark_complained), and an emailed unsubscribe leaves whatever is still held.
_BOUNCES_FROM = ("active",)


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


def attribute(session: Session, event: Event) -> tuple[Person | None, OutboxMessage | None, str]:
    """Who an event is about: a verified token, else our Message-ID, else the report's recipient
    field, and then only someone we have mailed (never an address merely named in a text).

    Tokens and outbox rows name people (`outbox.subscriber_id` is a person's id since 0005).
    """
    if event.subscriber_id is not None:
        subscriber = session.get(Person, event.subscriber_id)
        if subscriber is not None:
            return subscriber, _last_row(session, event.subscriber_id, event.edition_id), "token"
    row = _row_by_message_id(session, event.message_id)
    if row is not None:
        return session.get(Person, row.subscriber_id), row, "message-id"
    if event.address:
        subscriber = subscriptions.find_person(session, event.address)
        if subscriber is not None and subscriber.id is not None:
            row = _last_row(session, subscriber.id, None)
            if row is not None:
                return subscriber, row, "address"
    return None, None, ""


def _transition(
    session: Session, subscriber: Person, status: str, *, event: Event, now: datetime
) -> bool:
    """Change a person's status through the subscriptions module; whether it changed.

    The module records the consent event. The soft-bounce score is kept by `_score` here, so
    `transition` is called rather than `mark_bounced` (which would count the bounce again).
    """
    if status == "bounced":
        if subscriber.status not in _BOUNCES_FROM:
            return False
        return subscriptions.transition(
            session,
            subscriber,
            "bounced",
            action="bounce",
            origin=Origin.bounce(event.why),
            now=now,
        )
    if status == "complained":
        return subscriptions.mark_complained(
            session, subscriber, origin=Origin.complaint(event.why), now=now
        )
    # RFC 8058 semantics, as the one-click link: the address leaves every subscription it holds.
    before = subscriber.status
    subscriptions.unsubscribe(session, subscriber, origin=Origin("email", event.why), now=now)
    return before != subscriber.status == "unsubscribed"


def _fail_row(row: OutboxMessage | None, why: str, now: datetime) -> None:
    if row is None or row.state not in ("sent", "sending", "failed_temporary"):
        return
    row.state = "failed_permanent"
    row.last_error = f"bounce: {why}"[:1000]
    row.next_attempt_at = None
    row.updated_at = now


def _score(subscriber: Person, settings: Settings, now: datetime) -> str:
    """Add a soft bounce to the score as Mailman does; what happened to it."""
    last = subscriber.last_bounce_at
    if last is not None and now - last < ONE_BOUNCE_PER:
        return f"score {subscriber.soft_bounces} (a soft bounce counted already today)"
    if last is not None and now - last > timedelta(days=settings.bounces.quiet_days):
        subscriber.soft_bounces = 0  # quiet long enough: the old bounces are forgiven
    subscriber.soft_bounces += 1
    subscriber.last_bounce_at = now
    return f"score {subscriber.soft_bounces}/{settings.bounces.soft_limit}"


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
        if subscriber.soft_bounces >= settings.bounces.soft_limit:
            bounced = _transition(session, subscriber, "bounced", event=event, now=now)
            marked = "bounced" if bounced else None
    else:
        status = "complained" if event.kind == "complaint" else "unsubscribed"
        marked = status if _transition(session, subscriber, status, event=event, now=now) else None
    session.add(subscriber)
    if row is not None:
        session.add(row)
    return Applied(event, subscriber.email, how, marked, note)
