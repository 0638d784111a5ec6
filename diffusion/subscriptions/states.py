"""The states of people and subscriptions, and the one transition that changes them."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from diffusion.errors import DiffusionError
from diffusion.models import ConsentEvent, Person, Subscription

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


# --- a subscription's fields ----------------------------------------------------------------


def same_fields(subscription: Subscription, values: Mapping[str, Any]) -> bool:
    return all(
        getattr(subscription, name) == values[name]
        for name in (*NARROWING, "cadence")
        if name in values
    )


def new_subscription(person: Person, audience: str, key: str, *, now: datetime) -> Subscription:
    """A subscription not yet in any state: its first transition says how it began."""
    return Subscription(
        person_id=person.id or 0,
        audience=audience,
        key=key,
        status="new",
        status_changed_at=now,
        created_at=now,
    )


def update_fields(subscription: Subscription, values: Mapping[str, Any]) -> bool:
    changed = False
    for name in (*NARROWING, "cadence"):
        if name in values and getattr(subscription, name) != values[name]:
            setattr(subscription, name, list(values[name]) if name in NARROWING else values[name])
            changed = True
    return changed


def label(subscription: Subscription) -> str:
    return (
        f"{subscription.audience}:{subscription.key}" if subscription.key else subscription.audience
    )
