"""Subscriptions: the only code that creates people and subscriptions or changes their state.

Web pages, imports, bounce processing, the send loop and the CLI are thin adapters over these
functions. Every change of status goes through `transition`, which writes a `ConsentEvent`
saying when, why (`action`) and from where (`Origin`: a web page and its language, an import
file and line, a CLI command, a bounce, a complaint, an editor, a refusal at send time).

Consent rules kept here, nowhere else:
- a person who unsubscribed, bounced or complained is *suppressed*: no import, CLI addition
  or editor action makes them active again (`Suppressed`); an erased address is kept as a
  keyed hash (`Suppression`) with the same effect;
- only the person's own confirmed opt-in (`confirm`) lifts a suppression;
- a subscription to an audience that receives non-public items waits for an editor
  (`awaiting_approval`) after confirmation, unless the routing rules approve its address's
  domain at once (`auto_approved`);
- submitting the public form for a known address stores nothing (`request`): only the
  confirmation of that request changes anything.

Functions take an open session and `now`; they flush but never commit (the caller's scope does).
"""

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from diffusion import validate
from diffusion.contracts import Segment
from diffusion.errors import DiffusionError, InvalidInput
from diffusion.models import (
    ConsentEvent,
    Edition,
    OutboxMessage,
    Person,
    Subscription,
    Suppression,
)
from diffusion.select.directory import Directory
from diffusion.select.rules import RoutingRules

# A person in one of these statuses is never mailed, whatever their subscriptions say.
SUPPRESSED = ("unsubscribed", "bounced", "complained")
# Subscriptions that still count as the person's: a person with none of these left has gone.
LIVE = ("pending", "awaiting_approval", "active")
# The fields a subscription is made of (besides its audience and key).
NARROWING = ("sectors", "themes", "regions")
ORIGINS = (
    "web",
    "import",
    "cli",
    "bounce",
    "complaint",
    "editor",
    "send",
    "email",
    "purge",
    "migration",
)
# A permanent refusal that is about the recipient, not the message: no such user (5.1.x),
# mailbox disabled or full for good (5.2.1), refused for this recipient (5.7.1).
_RECIPIENT_REFUSAL = re.compile(r"^\s*5\d\d[\s-]+5\.(?:1\.\d{1,3}|2\.1|7\.1)(?!\d)")
_BASIC_RECIPIENT_CODES = ("550", "551", "553")


class Suppressed(DiffusionError, PermissionError):
    """The address unsubscribed, bounced, complained or was erased: only its own opt-in
    brings it back."""

    # The command was used rightly; the work (adding them) is refused.
    exit_code = 1


@dataclass(frozen=True)
class Origin:
    """Where a change comes from: its kind (one of ORIGINS) and a detail that says more."""

    kind: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ORIGINS:
            raise ValueError(f"origin {self.kind!r}: expected one of {', '.join(ORIGINS)}")

    @classmethod
    def web(cls, language: str, page: str = "") -> "Origin":
        """A public page, in the language it was shown in."""
        return cls("web", f"{page} page in {language}".strip())

    @classmethod
    def imported(cls, path: object, line: int | None = None) -> "Origin":
        return cls("import", f"{path}:{line}" if line is not None else str(path))

    @classmethod
    def cli(cls, command: str) -> "Origin":
        return cls("cli", command)

    @classmethod
    def bounce(cls, detail: str) -> "Origin":
        return cls("bounce", detail)

    @classmethod
    def complaint(cls, detail: str) -> "Origin":
        return cls("complaint", detail)

    @classmethod
    def editor(cls, detail: str) -> "Origin":
        return cls("editor", detail)

    @classmethod
    def send(cls, reply: str) -> "Origin":
        """A refusal by the receiving server at SMTP time."""
        return cls("send", reply)

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


# --- the transition -------------------------------------------------------------------------


def transition(
    session: Session,
    person: Person,
    status: str,
    *,
    action: str,
    origin: Origin,
    now: datetime,
    subscription: Subscription | None = None,
) -> bool:
    """Move the person (or one of their subscriptions) to `status`, recording why and whence.

    The only place a status is written. Returns False (and records nothing) when the status is
    already that one. A person who becomes active again starts with no soft bounces and a new
    consent date.
    """
    target: Person | Subscription = subscription if subscription is not None else person
    before = target.status
    if before == status:
        return False
    target.status = status
    target.status_changed_at = now
    if subscription is None and status == "active":
        person.consent_at = now
        person.soft_bounces = 0
    session.add(target)
    session.flush()  # new rows get their ids, which the event names
    session.add(
        ConsentEvent(
            person_id=person.id or 0,
            subscription_id=subscription.id if subscription is not None else None,
            at=now,
            action=action,
            from_status=before,
            to_status=status,
            origin=origin.kind,
            detail=origin.detail[:1000],
        )
    )
    return True


# --- finding --------------------------------------------------------------------------------


def normalise_address(email: str) -> str:
    """The address as stored; one that no longer validates is looked up lower-cased as given."""
    try:
        return validate.subscriber_email(email)
    except InvalidInput:
        return email.strip().lower()


def find_person(session: Session, email: str) -> Person | None:
    """The person with this address, whatever its capitals; None if there is none."""
    address = normalise_address(email)
    return session.exec(select(Person).where(Person.email == address)).first()


def subscriptions_of(session: Session, person: Person) -> list[Subscription]:
    """The person's subscriptions, oldest first (left ones included)."""
    return list(
        session.exec(
            select(Subscription)
            .where(Subscription.person_id == person.id)
            .order_by(col(Subscription.id))
        ).all()
    )


def address_hash(email: str, secret: str) -> str:
    """The keyed hash an erased address is remembered by (HMAC-SHA256 of its normal form)."""
    if not secret:
        raise ValueError("a suppression hash needs a non-empty key")
    message = b"diffusion.suppression:" + normalise_address(email).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


# A key, or the keys in use (current first): an address erased under an older key is still
# recognised after the key is rotated.
Keys = str | Sequence[str]


def _keys(secret: Keys) -> tuple[str, ...]:
    return (secret,) if isinstance(secret, str) else tuple(secret)


def erased(session: Session, email: str, secret: Keys) -> bool:
    """Whether this address was erased (and so may not be added back by anyone but itself)."""
    return any(
        session.get(Suppression, address_hash(email, key)) is not None
        for key in _keys(secret)
        if key
    )


def suppression_of(session: Session, person: Person | None, email: str, secret: Keys) -> str | None:
    """Why the address may not be mailed without its own opt-in, or None.

    `secret` holds the keys erased addresses were hashed with (settings.signing_keys()); without
    one, erased addresses are not recognised (the web and CLI always give it).
    """
    if person is not None and person.status in SUPPRESSED:
        return person.status
    if person is None and secret and erased(session, email, secret):
        return "erased"
    return None


# --- adding (editors, imports, CLI) -----------------------------------------------------------


def _same(subscription: Subscription, values: Mapping[str, Any]) -> bool:
    return all(
        getattr(subscription, name) == values[name]
        for name in (*NARROWING, "cadence")
        if name in values
    )


def _update(subscription: Subscription, values: Mapping[str, Any]) -> bool:
    changed = False
    for name in (*NARROWING, "cadence"):
        if name in values and getattr(subscription, name) != values[name]:
            setattr(subscription, name, list(values[name]) if name in NARROWING else values[name])
            changed = True
    return changed


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
    collect.subscribers.check_subscriber gives them. A known address gains the subscription,
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
    found = _subscription(session, person, values["audience"], values.get("key", ""))
    if found is not None and found.status == "left":
        raise Suppressed(
            f"{email} left {_label(found)}: only their own opt-in can subscribe them again"
        )
    if found is None:
        found = Subscription(
            person_id=person.id or 0,
            audience=values["audience"],
            key=values.get("key", ""),
            status="new",
            status_changed_at=now,
            created_at=now,
        )
        _update(found, values)
        session.add(found)
        transition(
            session, person, "active", action="add", origin=origin, now=now, subscription=found
        )
        return found, "created" if outcome == "created" else "updated"
    if _update(found, values):
        outcome = "updated"
    if transition(
        session, person, "active", action="add", origin=origin, now=now, subscription=found
    ):
        outcome = "updated"
    session.add(found)
    return found, outcome


def _subscription(
    session: Session, person: Person, audience: str, audience_key: str
) -> Subscription | None:
    if person.id is None:
        return None
    return session.exec(
        select(Subscription).where(
            Subscription.person_id == person.id,
            Subscription.audience == audience,
            Subscription.key == audience_key,
        )
    ).first()


def _label(subscription: Subscription) -> str:
    return (
        f"{subscription.audience}:{subscription.key}" if subscription.key else subscription.audience
    )


# --- the public form: request, then confirm ---------------------------------------------------


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
        found = _subscription(session, person, wish.audience, wish.key)
        already = (
            person.status == "active"
            and found is not None
            and found.status == "active"
            and _same(found, wish.values())
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
    pending = Subscription(
        person_id=person.id or 0,
        audience=wish.audience,
        key=wish.key,
        status="new",
        status_changed_at=now,
        created_at=now,
    )
    _update(pending, wish.values())
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
    found = _subscription(session, person, wish.audience, wish.key)
    if found is None or found.status not in ("active", "awaiting_approval"):
        return None
    return found.status if _same(found, wish.values()) else None


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
    found = _subscription(session, person, wish.audience, wish.key)
    if found is None:
        found = Subscription(
            person_id=person.id or 0,
            audience=wish.audience,
            key=wish.key,
            status="new",
            status_changed_at=now,
            created_at=now,
        )
    _update(found, wish.values())
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


# --- leaving and suppression ------------------------------------------------------------------


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


# --- the person's data ------------------------------------------------------------------------


def erase(session: Session, person: Person, *, secret: Keys, now: datetime) -> None:
    """Remove everything about the person (subscriptions, consent records, outbox rows) and keep
    only a keyed hash of the address, so that no later import or addition mails them again."""
    digest = address_hash(person.email, _keys(secret)[0])
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


# --- reading ----------------------------------------------------------------------------------


def effective_status(person: Person, subscription: Subscription) -> str:
    """What a subscription amounts to: its person's status unless that is active."""
    return subscription.status if person.status == "active" else person.status


def listing(
    session: Session, *, audience: str | None = None, status: str | None = None
) -> list[tuple[Person, Subscription]]:
    """One (person, subscription) per subscription, by audience, key and address; `status`
    filters on the effective status."""
    query = select(Person, Subscription).join(
        Subscription, col(Subscription.person_id) == col(Person.id)
    )
    if audience:
        query = query.where(Subscription.audience == validate.audience(audience))
    order = (col(Subscription.audience), col(Subscription.key), col(Person.email))
    rows = [(person, sub) for person, sub in session.exec(query.order_by(*order)).all()]
    if status:
        rows = [(p, s) for p, s in rows if effective_status(p, s) == status]
    return rows


def people_segments(
    session: Session,
    *,
    language: str | None = None,
    cadence: str | None = None,
    holding: tuple[str, str] | None = None,
    batch_size: int = 5000,
) -> Iterator[tuple[int, Segment]]:
    """(person id, segment) for each active person and cadence of their active subscriptions.

    `holding` (audience, key) reads only the people with that active subscription: an edition's
    readers are found among those of its first subscription, not among everyone. Read in pages
    of people by id, as plain rows; the narrowing lists come as JSON text and a combination of
    subscriptions is made into a segment once, not once per person.
    """
    table = cast(sa.Table, Subscription.__table__)  # type: ignore[attr-defined]
    people = cast(sa.Table, Person.__table__)  # type: ignore[attr-defined]
    lists = [sa.cast(table.c[name], sa.Text) for name in NARROWING]
    made: dict[tuple[Any, ...], Segment] = {}
    last = 0
    while True:
        conditions = [people.c.status == "active", people.c.id > last]
        if language is not None:
            conditions.append(people.c.language == language)
        if holding is not None:
            conditions.append(
                people.c.id.in_(
                    sa.select(table.c.person_id).where(
                        table.c.audience == holding[0],
                        table.c.key == holding[1],
                        table.c.status == "active",
                    )
                )
            )
        ids = list(
            session.execute(
                sa.select(people.c.id).where(*conditions).order_by(people.c.id).limit(batch_size)
            ).scalars()
        )
        if not ids:
            return
        query = (
            sa.select(
                table.c.person_id,
                people.c.language,
                table.c.cadence,
                table.c.audience,
                table.c.key,
                *lists,
            )
            .join(people, people.c.id == table.c.person_id)
            .where(table.c.person_id.in_(ids), table.c.status == "active")
            .order_by(table.c.person_id, table.c.cadence, table.c.id)
        )
        if cadence is not None:
            query = query.where(table.c.cadence == cadence)
        rows = session.execute(query).all()
        for (person_id, person_language, person_cadence), group in groupby(
            rows, key=lambda row: (row[0], row[1], row[2])
        ):
            combination = (person_language, person_cadence, *(tuple(row[3:]) for row in group))
            segment = made.get(combination)
            if segment is None:
                segment = made[combination] = Segment.of_person(
                    person_language,
                    [
                        _Part(audience, key, person_cadence, *map(_decoded, narrowing))
                        for audience, key, *narrowing in combination[2:]
                    ],
                )
            yield person_id, segment
        last = ids[-1]


@dataclass(frozen=True)
class _Part:
    """What Segment.of_person reads of a subscription."""

    audience: str
    key: str
    cadence: str
    sectors: list[str]
    themes: list[str]
    regions: list[str]


def _decoded(text: str | None) -> list[str]:
    value = json.loads(text or "[]")
    return [str(v) for v in value] if isinstance(value, list) else []


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
        if _update(subscription, values):
            session.add(subscription)
            changed.append(f"{_label(subscription)} narrowing")
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


def everyone(session: Session) -> list[Person]:
    """Every person, by id."""
    return list(session.exec(select(Person).order_by(col(Person.id))).all())
