"""Test fixtures' people: a person with one subscription in one call, as the old subscriber rows
were made, for tests whose subject is not how people are added."""

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlmodel import Session

from diffusion.config import bundled_path
from diffusion.models import Person, Subscription
from diffusion.select.rules import load_rules

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
# The bundled routing rules: the audiences and keys of the tests' people are checked against them.
RULES = load_rules(bundled_path("routing"))


def enrol(
    session: Session,
    email: str,
    audience: str = "public",
    key: str = "",
    *,
    name: str = "",
    language: str = "en",
    sectors: Iterable[str] = (),
    themes: Iterable[str] = (),
    regions: Iterable[str] = (),
    cadence: str = "monthly",
    status: str = "active",
    person: Person | None = None,
) -> Person:
    """A person (or `person`, given) holding one more subscription, stored as they are.

    `status` is the person's; an unsubscribed person's subscription is left, a pending
    person's pending, otherwise active.
    """
    if person is None:
        person = Person(
            email=email,
            name=name,
            language=language,
            status=status,
            consent_at=None if status == "pending" else CREATED,
            status_changed_at=CREATED,
            created_at=CREATED,
        )
        session.add(person)
        session.flush()
    assert person.id is not None
    session.add(
        Subscription(
            person_id=person.id,
            audience=audience,
            key=key,
            sectors=list(sectors),
            themes=list(themes),
            regions=list(regions),
            cadence=cadence,
            status={"unsubscribed": "left", "pending": "pending"}.get(status, "active"),
            status_changed_at=CREATED,
            created_at=CREATED,
        )
    )
    session.flush()
    return person
