"""The person's data: erasure, export (their right of access), purging stale requests."""

from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from diffusion.models import ConsentEvent, Edition, OutboxMessage, Person, Subscription, Suppression

from .lookups import subscriptions_of
from .suppression import Keys, address_hash, key_list


def erase(session: Session, person: Person, *, secret: Keys, now: datetime) -> None:
    """Remove everything about the person (subscriptions, consent records, outbox rows) and keep
    only a keyed hash of the address, so that no later import or addition mails them again."""
    digest = address_hash(person.email, key_list(secret)[0])
    if session.get(Suppression, digest) is None:
        session.add(Suppression(address_hash=digest, reason="erased", at=now))
    session.exec(delete(OutboxMessage).where(col(OutboxMessage.subscriber_id) == person.id))
    session.exec(delete(ConsentEvent).where(col(ConsentEvent.person_id) == person.id))
    session.exec(delete(Subscription).where(col(Subscription.person_id) == person.id))
    session.delete(person)
    session.flush()


def export_person(session: Session, person: Person) -> dict[str, Any]:
    """Everything held about the person, as JSON-able data (their right of access)."""

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    outbox = cast(sa.Table, OutboxMessage.__table__)  # type: ignore[attr-defined]
    editions = cast(sa.Table, Edition.__table__)  # type: ignore[attr-defined]
    sent = session.execute(
        sa.select(
            outbox.c.edition_id,
            editions.c.period,
            editions.c.subject,
            outbox.c.state,
            outbox.c.sent_at,
            outbox.c.message_id,
        )
        .join(editions, editions.c.id == outbox.c.edition_id)
        .where(outbox.c.subscriber_id == person.id)
        .order_by(outbox.c.id)
    ).all()
    events = session.exec(
        select(ConsentEvent)
        .where(ConsentEvent.person_id == person.id)
        .order_by(col(ConsentEvent.id))
    ).all()
    return {
        "email": person.email,
        "name": person.name,
        "language": person.language,
        "status": person.status,
        "soft_bounces": person.soft_bounces,
        "consent_at": when(person.consent_at),
        "created_at": when(person.created_at),
        "subscriptions": [
            {
                "audience": s.audience,
                "key": s.key,
                "sectors": list(s.sectors),
                "themes": list(s.themes),
                "regions": list(s.regions),
                "cadence": s.cadence,
                "status": s.status,
                "created_at": when(s.created_at),
                "status_changed_at": when(s.status_changed_at),
            }
            for s in subscriptions_of(session, person)
        ],
        "consent": [
            {
                "at": when(e.at),
                "action": e.action,
                "from": e.from_status,
                "to": e.to_status,
                "origin": e.origin,
                "detail": e.detail,
                "subscription": e.subscription_id,
            }
            for e in events
        ],
        "messages": [
            {
                "edition": edition_id,
                "period": period,
                "subject": subject,
                "state": state,
                "sent_at": when(sent_at),
                "message_id": message_id,
            }
            for edition_id, period, subject, state, sent_at, message_id in sent
        ],
    }


def purge_pending(session: Session, *, older_than: timedelta, now: datetime) -> int:
    """Remove the people who asked and never confirmed within `older_than`; returns how many.

    Nothing of theirs was ever sent but the confirmation, so nothing else is kept.
    """
    stale = session.exec(
        select(Person).where(
            Person.status == "pending", col(Person.status_changed_at) < now - older_than
        )
    ).all()
    for person in stale:
        session.exec(delete(ConsentEvent).where(col(ConsentEvent.person_id) == person.id))
        session.exec(delete(Subscription).where(col(Subscription.person_id) == person.id))
        session.exec(delete(OutboxMessage).where(col(OutboxMessage.subscriber_id) == person.id))
        session.delete(person)
    session.flush()
    return len(stale)
