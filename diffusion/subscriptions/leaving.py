"""Leaving: unsubscribing, bounces and complaints, refusals at send time."""

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlmodel import Session

from diffusion.errors import InvalidInput
from diffusion.models import Person, Subscription

from .lookups import subscriptions_of
from .states import LIVE, SUPPRESSED, Origin, transition

# A permanent refusal that is about the recipient, not the message: no such user (5.1.x),
# mailbox disabled or full for good (5.2.1), refused for this recipient (5.7.1).
_RECIPIENT_REFUSAL = re.compile(r"^\s*5\d\d[\s-]+5\.(?:1\.\d{1,3}|2\.1|7\.1)(?!\d)")
_BASIC_RECIPIENT_CODES = ("550", "551", "553")


def leave(
    session: Session, person: Person, subscription: Subscription, *, origin: Origin, now: datetime
) -> None:
    """The person leaves one subscription; leaving the last one unsubscribes them."""
    if subscription.person_id != person.id:
        raise InvalidInput("this subscription is not the person's")
    transition(
        session, person, "left", action="leave", origin=origin, now=now, subscription=subscription
    )
    live = [s for s in subscriptions_of(session, person) if s.status in LIVE]
    if not live and person.status not in SUPPRESSED:
        transition(session, person, "unsubscribed", action="leave", origin=origin, now=now)


def unsubscribe(
    session: Session,
    person: Person,
    *,
    origin: Origin,
    now: datetime,
    subscriptions: Sequence[Subscription] | None = None,
) -> None:
    """Leave these subscriptions (default: all of them); none left means unsubscribed.

    The one-click unsubscribe of an email leaves every subscription the email covered.
    """
    chosen = subscriptions if subscriptions is not None else subscriptions_of(session, person)
    for subscription in chosen:
        if subscription.person_id == person.id:
            transition(
                session,
                person,
                "left",
                action="unsubscribe",
                origin=origin,
                now=now,
                subscription=subscription,
            )
    live = [s for s in subscriptions_of(session, person) if s.status in LIVE]
    if not live and person.status not in SUPPRESSED:
        transition(session, person, "unsubscribed", action="unsubscribe", origin=origin, now=now)


def mark_bounced(
    session: Session,
    person: Person,
    *,
    origin: Origin,
    now: datetime,
    hard: bool = True,
    soft_limit: int = 3,
) -> bool:
    """A bounce of the person's mail: a hard one, or the `soft_limit`-th soft one, suppresses
    them. Returns whether the person is now bounced because of this one."""
    if not hard:
        person.soft_bounces += 1
        session.add(person)
    if person.status != "active":
        return False
    if hard or person.soft_bounces >= soft_limit:
        return transition(session, person, "bounced", action="bounce", origin=origin, now=now)
    return False


def mark_complained(session: Session, person: Person, *, origin: Origin, now: datetime) -> bool:
    """A spam complaint (feedback loop): the person is never mailed again without opting in."""
    return transition(session, person, "complained", action="complaint", origin=origin, now=now)


def is_recipient_refusal(reply: str) -> bool:
    """Whether an SMTP reply refuses the recipient for good (550 5.1.1, 5.2.1, 5.7.1...), as
    opposed to the message or the connection."""
    if _RECIPIENT_REFUSAL.match(reply):
        return True
    code, _, rest = reply.strip().partition(" ")
    return code in _BASIC_RECIPIENT_CODES and not re.match(r"\d\.\d", rest)


def refused_at_send(session: Session, refusals: Mapping[int, str], *, now: datetime) -> list[str]:
    """Record permanent refusals at SMTP time {person id: reply}: a recipient-specific one is a
    hard bounce of that person. Returns the addresses marked bounced."""
    marked = []
    for person_id, reply in refusals.items():
        if not is_recipient_refusal(reply):
            continue
        person = session.get(Person, person_id)
        if person is not None and mark_bounced(
            session, person, origin=Origin.send(reply), now=now, hard=True
        ):
            marked.append(person.email)
    return marked
