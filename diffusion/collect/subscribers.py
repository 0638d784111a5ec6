"""Subscribers: the people who receive editions, imported from CSV or added one by one."""

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from diffusion import validate
from diffusion.collect.report import ImportReport
from diffusion.errors import InvalidInput
from diffusion.models import FieldOffice, Organisation, OutboxMessage, Subscriber

REQUIRED_COLUMNS = ("email", "name", "language", "audience", "key")
OPTIONAL_COLUMNS = ("sectors", "themes", "regions", "cadence")
# Audiences whose subscribers follow one organisation, Sector, office or country.
KEYED_AUDIENCES = ("ngo", "sector", "field_office", "member_state", "national_commission")
# The fields an import or an addition sets; status, bounces and history are left alone.
_FIELDS = (
    "email",
    "name",
    "language",
    "audience",
    "key",
    "sectors",
    "themes",
    "regions",
    "cadence",
)


class KnownKeys:
    """The organisation slugs and Field Office codes that keys are checked against, read once."""

    def __init__(self, session: Session) -> None:
        self.organisations = set(session.exec(select(Organisation.slug)).all())
        self.field_offices = set(session.exec(select(FieldOffice.code)).all())


def check_key(directory: "KnownKeys | Session", audience: str, key: object) -> str:
    """The audience key in its normal form, checked against the directory where it names a row."""
    if isinstance(directory, Session):
        directory = KnownKeys(directory)
    text = "" if key is None else str(key).strip()
    if audience not in KEYED_AUDIENCES:
        if text:
            raise InvalidInput(f"key {text!r}: audience {audience} takes no key; leave it empty")
        return ""
    if not text:
        raise InvalidInput(f"key: missing; audience {audience} needs one")
    if audience == "sector":
        return validate.sector(text)
    if audience in ("member_state", "national_commission"):
        return validate.country(text)
    if audience == "ngo":
        if text.lower() not in directory.organisations:
            raise InvalidInput(
                f"key {text!r}: no organisation with this slug in the directory; "
                "import the directory first (diffusion directory import)"
            )
        return text.lower()
    if text.lower() not in directory.field_offices:
        raise InvalidInput(
            f"key {text!r}: no Field Office with this code in the directory; "
            "import the directory first (diffusion directory import)"
        )
    return text.lower()


def check_subscriber(directory: "KnownKeys | Session", row: Mapping[str, Any]) -> dict[str, Any]:
    """A subscriber's fields validated and normalised, or InvalidInput naming the bad value.

    Give a KnownKeys when checking many rows, so the directory is read once.
    """
    audience = validate.audience(row.get("audience"))
    language_value = row.get("language")
    cadence_value = row.get("cadence")
    return {
        "email": validate.email(row.get("email")),
        "name": str(row.get("name") or "").strip(),
        "language": validate.language(language_value) if language_value else "en",
        "audience": audience,
        "key": check_key(directory, audience, row.get("key")),
        "sectors": validate.unique(map(validate.sector, validate.split_list(row.get("sectors")))),
        "themes": validate.unique(map(validate.theme, validate.split_list(row.get("themes")))),
        "regions": validate.unique(map(validate.region, validate.split_list(row.get("regions")))),
        "cadence": validate.cadence(cadence_value) if cadence_value else "monthly",
    }


def _find(session: Session, address: str) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.email == address)).first()


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
    if existing.status != status:
        existing.status = status
        existing.status_changed_at = now
        changed["status"] = status
    if status == "active" and existing.consent_at is None:
        existing.consent_at = now
    for field, value in changed.items():
        setattr(existing, field, value)
    session.add(existing)
    return existing, "updated" if changed else "unchanged"


def import_subscribers(session: Session, path: Path, *, now: datetime) -> ImportReport:
    """Import a subscribers CSV; an import asserts consent was collected, so rows are active."""
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
    directory = KnownKeys(session)
    # One query for the existing rows rather than one per line: imports run to thousands.
    existing = {s.email: s for s in session.exec(select(Subscriber)).all()}
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        try:
            values = check_subscriber(directory, row)
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
        setattr(report, outcome, getattr(report, outcome) + 1)
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
) -> Subscriber:
    """Add one subscriber, or update the one with this address; InvalidInput if a value is bad."""
    if status not in ("pending", "active"):
        raise InvalidInput(f"status {status!r}: a new subscriber is pending or active")
    values = check_subscriber(
        KnownKeys(session),
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
    subscriber, _ = _store(session, values, now, status, _find(session, values["email"]))
    session.flush()
    return subscriber


def remove_subscriber(session: Session, email: str) -> bool:
    """Erase a subscriber and every outbox row addressed to them; False if there was none.

    Removal deletes the personal data rather than marking it: the outbox rows name the person
    too, so they go with the row. To stop mail but keep the history, unsubscribe instead.
    """
    try:
        address = validate.email(email)
    except InvalidInput:
        address = email.strip()
    subscriber = _find(session, address)
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
