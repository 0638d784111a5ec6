"""Adding a subscription that an editor vouches for (imports, the CLI): active at once."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session

from diffusion.models import Person, Subscription

from .lookups import find_person, subscription_to
from .states import Origin, Suppressed, label, new_subscription, transition, update_fields
from .suppression import Keys, suppression_of


def add(
    session: Session,
    values: Mapping[str, Any],
    *,
    origin: Origin,
    now: datetime,
    secret: Keys,
    known: dict[str, Person] | None = None,
) -> tuple[Subscription, str]:
    """Add a subscription that an editor vouches for (import, CLI): active at once.

    `values` are checked fields (email, name, language, audience, key, narrowing, cadence), as
    imports.check_subscriber gives them. A known address gains the subscription,
    or has it updated. Raises Suppressed for a suppressed or erased address, or a subscription
    the person left. Returns the subscription and created/updated/unchanged. `known` maps
    addresses to people already read (imports read them once).
    """
    email = values["email"]
    person = known.get(email) if known is not None else find_person(session, email)
    reason = suppression_of(session, person, email, secret)
    if reason is not None:
        raise Suppressed(f"{email} is {reason}: only their own opt-in can subscribe them again")
    outcome = "unchanged"
    if person is None:
        person = Person(
            email=email,
            name=values.get("name", ""),
            language=values.get("language", "en"),
            status="new",
            consent_at=now,
            status_changed_at=now,
            created_at=now,
        )
        session.add(person)
        transition(session, person, "active", action="add", origin=origin, now=now)
        if known is not None:
            known[email] = person
        outcome = "created"
    else:
        for name in ("name", "language"):
            if values.get(name) and getattr(person, name) != values[name]:
                setattr(person, name, values[name])
                outcome = "updated"
        if person.status == "pending":
            transition(session, person, "active", action="add", origin=origin, now=now)
            outcome = "updated"
        session.add(person)
    found = subscription_to(session, person, values["audience"], values.get("key", ""))
    if found is not None and found.status == "left":
        raise Suppressed(
            f"{email} left {label(found)}: only their own opt-in can subscribe them again"
        )
    if found is None:
        found = new_subscription(person, values["audience"], values.get("key", ""), now=now)
        update_fields(found, values)
        session.add(found)
        transition(
            session, person, "active", action="add", origin=origin, now=now, subscription=found
        )
        return found, "created" if outcome == "created" else "updated"
    if update_fields(found, values):
        outcome = "updated"
    if transition(
        session, person, "active", action="add", origin=origin, now=now, subscription=found
    ):
        outcome = "updated"
    session.add(found)
    return found, outcome
