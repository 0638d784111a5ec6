"""The person's own changes: their language, a subscription's narrowing and cadence."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session

from diffusion.errors import InvalidInput
from diffusion.models import ConsentEvent, Person, Subscription

from .states import Origin, label, update_fields


def change(
    session: Session,
    person: Person,
    *,
    origin: Origin,
    now: datetime,
    language: str | None = None,
    subscription: Subscription | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """The person's own changes: their language, a subscription's narrowing and cadence.

    Not a change of status, but written down like one. Returns whether anything changed.
    """
    changed = []
    if language and person.language != language:
        person.language = language
        session.add(person)
        changed.append(f"language={language}")
    if subscription is not None and values is not None:
        if subscription.person_id != person.id:
            raise InvalidInput("this subscription is not the person's")
        if update_fields(subscription, values):
            session.add(subscription)
            changed.append(f"{label(subscription)} narrowing")
    if changed:
        session.add(
            ConsentEvent(
                person_id=person.id or 0,
                subscription_id=subscription.id if subscription is not None else None,
                at=now,
                action="change",
                from_status=person.status,
                to_status=person.status,
                origin=origin.kind,
                detail=f"{origin.detail}: {', '.join(changed)}"[:1000],
            )
        )
        session.flush()
    return bool(changed)
