"""Subscribers: the people who receive editions, imported from CSV or added one by one."""

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from diffusion import audiences, validate
from diffusion.audiences import Directory, RoutingRules, load_rules, read_directory
from diffusion.collect.report import ImportReport, csv_rows
from diffusion.config import bundled_path
from diffusion.errors import InvalidInput, UnknownAudience
from diffusion.models import OutboxMessage, Subscriber

REQUIRED_COLUMNS = ("email", "name", "language", "audience", "key")
OPTIONAL_COLUMNS = ("sectors", "themes", "regions", "cadence")
# The fields an import or an addition sets (status, bounces and history are left alone): the
# columns an import reads, and so those an export writes for a round trip.
SUBSCRIBER_FIELDS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


@dataclass(frozen=True)
class KnownKeys:
    """The routing rules and directory that audience keys are checked against, read once."""

    rules: RoutingRules
    directory: Directory

    @classmethod
    def read(cls, session: Session, rules: RoutingRules | None = None) -> "KnownKeys":
        """The directory as stored now; the bundled routing rules unless `rules` are given."""
        return cls(rules or load_rules(bundled_path("subscribers")), read_directory(session))


def check_key(keys: KnownKeys, audience: str, key: object) -> str:
    """The audience key in its normal form, as the routing rules' key type for it says."""
    text = "" if key is None else str(key)
    try:
        return audiences.check_key(keys.rules, audience, text, keys.directory)
    except UnknownAudience as exc:
        # A subscriber's key is a value given by a person: reported like the other fields.
        raise InvalidInput(str(exc)) from exc


def check_subscriber(
    keys: KnownKeys | Session, row: Mapping[str, Any], *, rules: RoutingRules | None = None
) -> dict[str, Any]:
    """A subscriber's fields validated and normalised, or InvalidInput naming the bad value.

    Give a KnownKeys when checking many rows, so the directory is read once; given a session,
    keys are checked against `rules` (the bundled routing rules if none are given).
    """
    if isinstance(keys, Session):
        keys = KnownKeys.read(keys, rules)

    def listed(name: str, check: Callable[[object], str]) -> list[str]:
        with validate.in_field(name):
            return validate.unique(map(check, validate.split_list(row.get(name))))

    with validate.in_field("audience"):
        audience = validate.audience(row.get("audience"))
    with validate.in_field("email"):
        email = validate.subscriber_email(row.get("email"))
    with validate.in_field("language"):
        language = validate.language(row.get("language") or "en")
    with validate.in_field("key"):
        key = check_key(keys, audience, row.get("key"))
    sectors = listed("sectors", validate.sector)
    themes = listed("themes", validate.theme)
    regions = listed("regions", validate.region)
    with validate.in_field("cadence"):
        cadence = validate.cadence(row.get("cadence") or "monthly")
    return {
        "email": email,
        "name": str(row.get("name") or "").strip(),
        "language": language,
        "audience": audience,
        "key": key,
        "sectors": sectors,
        "themes": themes,
        "regions": regions,
        "cadence": cadence,
    }


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this address, whatever its capitals; None if there is none.

    An address that does not validate is looked up lower-cased as given, so that a row stored
    before a validator change can still be found (and removed).
    """
    try:
        address = validate.subscriber_email(email)
    except InvalidInput:
        address = email.strip().lower()
    return session.exec(select(Subscriber).where(Subscriber.email == address)).first()


SUPPRESSED_STATUSES = ("unsubscribed", "bounced", "complained")


def _store(
    session: Session,
    values: dict[str, Any],
    now: datetime,
    status: str,
    existing: Subscriber | None,
) -> tuple[Subscriber, str]:
    """Create or update by address; returns the row and created/updated/unchanged."""
    if existing is None:
        subscriber = Subscriber(
            **values,
            status=status,
            consent_at=now if status == "active" else None,
            status_changed_at=now,
            created_at=now,
        )
        session.add(subscriber)
        return subscriber, "created"
    changed = {k: v for k, v in values.items() if getattr(existing, k) != v}
    # Consent: whoever unsubscribed, bounced or complained opts in again only themselves.
    if existing.status != status and existing.status not in SUPPRESSED_STATUSES:
        existing.status = status
        existing.status_changed_at = now
        changed["status"] = status
    if status == "active" and existing.consent_at is None:
        existing.consent_at = now
    for field, value in changed.items():
        setattr(existing, field, value)
    session.add(existing)
    return existing, "updated" if changed else "unchanged"


def import_subscribers(
    session: Session, path: Path, *, now: datetime, rules: RoutingRules | None = None
) -> ImportReport:
    """Import a subscribers CSV; an import asserts consent was collected, so rows are active.

    Keys are checked against `rules` (settings.routing's; the bundled rules if None).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        problems = [f"missing column(s) {', '.join(missing)}"] if missing else []
        problems += [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        raise InvalidInput(
            f"{path}:1: {'; '.join(problems)}; expected {', '.join(REQUIRED_COLUMNS)} "
            f"and optionally {', '.join(OPTIONAL_COLUMNS)}"
        )
    reader.fieldnames = header
    report = ImportReport(str(path))
    keys = KnownKeys.read(session, rules)
    # One query for the existing rows rather than one per line: imports run to thousands.
    existing = {s.email: s for s in session.exec(select(Subscriber)).all()}
    seen: dict[str, int] = {}
    for line, row in csv_rows(reader):
        try:
            values = check_subscriber(keys, row)
        except InvalidInput as exc:
            report.problem(line, str(exc))
            continue
        if values["email"] in seen:
            report.problem(
                line, f"address {values['email']} is already on line {seen[values['email']]}"
            )
            continue
        seen[values["email"]] = line
        _, outcome = _store(session, values, now, "active", existing.get(values["email"]))
        report.count(outcome)
    session.flush()
    return report


def add_subscriber(
    session: Session,
    *,
    email: str,
    name: str = "",
    language: str = "en",
    audience: str,
    key: str = "",
    sectors: Iterable[str] = (),
    themes: Iterable[str] = (),
    regions: Iterable[str] = (),
    cadence: str = "monthly",
    now: datetime,
    status: str = "active",
    rules: RoutingRules | None = None,
) -> Subscriber:
    """Add one subscriber, or update the one with this address; InvalidInput if a value is bad."""
    if status not in ("pending", "active"):
        raise InvalidInput(f"status {status!r}: a new subscriber is pending or active")
    values = check_subscriber(
        KnownKeys.read(session, rules),
        {
            "email": email,
            "name": name,
            "language": language,
            "audience": audience,
            "key": key,
            "sectors": list(sectors),
            "themes": list(themes),
            "regions": list(regions),
            "cadence": cadence,
        },
    )
    subscriber, _ = _store(session, values, now, status, find_subscriber(session, values["email"]))
    session.flush()
    return subscriber


def remove_subscriber(session: Session, email: str) -> bool:
    """Erase a subscriber and every outbox row addressed to them; False if there was none.

    Removal deletes the personal data rather than marking it: the outbox rows name the person
    too, so they go with the row. To stop mail but keep the history, unsubscribe instead.
    """
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        return False
    session.exec(delete(OutboxMessage).where(col(OutboxMessage.subscriber_id) == subscriber.id))
    session.delete(subscriber)
    session.flush()
    return True


def remove_all_subscribers(session: Session) -> int:
    """Erase every subscriber and the whole outbox; returns how many subscribers were removed."""
    count = session.exec(select(sa.func.count()).select_from(Subscriber)).one()
    session.exec(delete(OutboxMessage))
    session.exec(delete(Subscriber))
    session.flush()
    return int(count)


def list_subscribers(
    session: Session, *, audience: str | None = None, status: str | None = None
) -> list[Subscriber]:
    """Subscribers, optionally of one audience and status, by audience, key and address."""
    query = select(Subscriber)
    if audience:
        query = query.where(Subscriber.audience == validate.audience(audience))
    if status:
        query = query.where(Subscriber.status == status)
    order = (col(Subscriber.audience), col(Subscriber.key), col(Subscriber.email))
    return list(session.exec(query.order_by(*order)).all())
