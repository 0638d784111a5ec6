"""The public form: a request, then its confirmation; approval by an editor."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from diffusion.errors import InvalidInput
from diffusion.models import Person, Subscription
from diffusion.select.directory import Directory
from diffusion.select.rules import RoutingRules

from .lookups import find_person, subscription_to
from .states import (
    SUPPRESSED,
    Origin,
    Suppressed,
    new_subscription,
    same_fields,
    transition,
    update_fields,
)


@dataclass(frozen=True)
class Request:
    """What someone asked for on the public form; carried, signed, by the confirmation link."""

    email: str
    name: str
    language: str
    audience: str
    key: str
    sectors: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    cadence: str = "monthly"

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> "Request":
        return cls(
            email=str(values["email"]),
            name=str(values.get("name") or ""),
            language=str(values.get("language") or "en"),
            audience=str(values["audience"]),
            key=str(values.get("key") or ""),
            sectors=tuple(values.get("sectors") or ()),
            themes=tuple(values.get("themes") or ()),
            regions=tuple(values.get("regions") or ()),
            cadence=str(values.get("cadence") or "monthly"),
        )

    def claims(self) -> dict[str, Any]:
        """The request as JSON-able claims for a signed token."""
        return {
            "a": self.audience,
            "k": self.key,
            "n": self.name,
            "l": self.language,
            "c": self.cadence,
            "s": list(self.sectors),
            "t": list(self.themes),
            "r": list(self.regions),
        }

    @classmethod
    def from_claims(cls, email: str, claims: Mapping[str, Any]) -> "Request":
        try:
            return cls(
                email=email,
                name=str(claims["n"]),
                language=str(claims["l"]),
                audience=str(claims["a"]),
                key=str(claims["k"]),
                sectors=tuple(map(str, claims["s"])),
                themes=tuple(map(str, claims["t"])),
                regions=tuple(map(str, claims["r"])),
                cadence=str(claims["c"]),
            )
        except (KeyError, TypeError) as exc:
            raise InvalidInput("this confirmation names no complete request") from exc

    def values(self) -> dict[str, Any]:
        return {
            "audience": self.audience,
            "key": self.key,
            "sectors": list(self.sectors),
            "themes": list(self.themes),
            "regions": list(self.regions),
            "cadence": self.cadence,
        }


@dataclass(frozen=True)
class Requested:
    """What `request` found: the person to write to, and whether it asks for nothing new."""

    person: Person
    already: bool  # the person already holds this very subscription, active


def request(session: Session, wish: Request, *, origin: Origin, now: datetime) -> Requested:
    """Someone asked on the public form: store a pending person only for an unknown address.

    For a known address (pending, active, suppressed) nothing stored changes: the caller sends
    a confirmation of `wish` to the address, and only that confirmation changes anything.
    """
    person = find_person(session, wish.email)
    if person is not None:
        found = subscription_to(session, person, wish.audience, wish.key)
        already = (
            person.status == "active"
            and found is not None
            and found.status == "active"
            and same_fields(found, wish.values())
        )
        return Requested(person, already)
    person = Person(
        email=wish.email,
        name=wish.name,
        language=wish.language,
        status="new",
        status_changed_at=now,
        created_at=now,
    )
    session.add(person)
    transition(session, person, "pending", action="request", origin=origin, now=now)
    pending = new_subscription(person, wish.audience, wish.key, now=now)
    update_fields(pending, wish.values())
    session.add(pending)
    transition(
        session, person, "pending", action="request", origin=origin, now=now, subscription=pending
    )
    return Requested(person, already=False)


def holds(session: Session, person: Person, wish: Request) -> str | None:
    """The status of the person's subscription to exactly what `wish` asks for (audience, key,
    narrowing, cadence), if the person is active and it is active or waiting; else None."""
    if person.status != "active":
        return None
    found = subscription_to(session, person, wish.audience, wish.key)
    if found is None or found.status not in ("active", "awaiting_approval"):
        return None
    return found.status if same_fields(found, wish.values()) else None


def needs_approval(rules: RoutingRules, audience: str) -> bool:
    """Whether the audience receives non-public items, and so is joined by approval."""
    spec = rules.audience(audience)
    return spec.include_private or any(rule.include_private for rule in spec.rules)


def auto_approved(
    rules: RoutingRules, directory: Directory, audience: str, audience_key: str, email: str
) -> bool:
    """Whether the routing rules approve this address at once for the audience key: its domain
    is one of the audience's `approved_domains`, or (with `approve_own_domain`) the domain of
    the NGO's own contact address."""
    spec = rules.audience(audience)
    domain = email.rpartition("@")[2].lower()
    if any(domain == d or domain.endswith("." + d) for d in spec.approved_domains):
        return True
    if spec.approve_own_domain and audience_key in directory.organisations:
        contact = directory.organisations[audience_key].contact_email or ""
        own = contact.rpartition("@")[2].lower()
        return bool(own) and domain == own
    return False


def spent(person: Person, issued_at: datetime) -> bool:
    """Whether a confirmation made at `issued_at` came before the person unsubscribed, bounced
    or complained: such a link cannot bring them back (a new request can)."""
    return person.status in SUPPRESSED and person.status_changed_at > issued_at


def confirm(
    session: Session,
    person: Person,
    wish: Request,
    *,
    rules: RoutingRules,
    directory: Directory,
    origin: Origin,
    now: datetime,
    issued_at: datetime,
) -> Subscription:
    """The person's own opt-in: the only way out of a suppression, and into a subscription.

    Refused (Suppressed) when the person unsubscribed, bounced or complained after the link
    was made: a link mailed before someone left cannot bring them back. A subscription to an
    audience with non-public items waits for approval unless its domain is approved at once.
    """
    if spent(person, issued_at):
        raise Suppressed(f"{person.email} is {person.status} since this link was sent")
    if wish.name:
        person.name = wish.name
    person.language = wish.language or person.language
    transition(session, person, "active", action="confirm", origin=origin, now=now)
    found = subscription_to(session, person, wish.audience, wish.key)
    if found is None:
        found = new_subscription(person, wish.audience, wish.key, now=now)
    update_fields(found, wish.values())
    session.add(found)
    status = "active"
    if found.status != "active" and needs_approval(rules, wish.audience):
        if not auto_approved(rules, directory, wish.audience, wish.key, person.email):
            status = "awaiting_approval"
    transition(
        session, person, status, action="confirm", origin=origin, now=now, subscription=found
    )
    return found


def approve(
    session: Session, subscriptions: Iterable[Subscription], *, origin: Origin, now: datetime
) -> list[Subscription]:
    """An editor lets these waiting subscriptions receive their mail; returns those approved."""
    approved = []
    for subscription in subscriptions:
        if subscription.status != "awaiting_approval":
            continue
        person = session.get(Person, subscription.person_id)
        if person is None:
            continue
        transition(
            session,
            person,
            "active",
            action="approve",
            origin=origin,
            now=now,
            subscription=subscription,
        )
        approved.append(subscription)
    return approved


def waiting(session: Session, email: str | None = None) -> list[Subscription]:
    """Subscriptions awaiting approval (of one address when given), oldest first."""
    query = select(Subscription).where(Subscription.status == "awaiting_approval")
    if email is not None:
        person = find_person(session, email)
        if person is None:
            return []
        query = query.where(Subscription.person_id == person.id)
    return list(session.exec(query.order_by(col(Subscription.id))).all())
