"""Subscribers' files and additions: checking the rows, then adding them as subscriptions."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from diffusion import validate
from diffusion.errors import InvalidInput, UnknownAudience
from diffusion.models import Person
from diffusion.rows import Columns, ImportReport, csv_rows
from diffusion.select import directory as routing_directory
from diffusion.select.directory import Directory, read_directory
from diffusion.select.rules import RoutingRules

from .adding import add
from .confirming import Request, request
from .lookups import find_person
from .states import Origin, Suppressed
from .suppression import Keys

REQUIRED_COLUMNS = ("email", "name", "language", "audience", "key")
OPTIONAL_COLUMNS = ("sectors", "themes", "regions", "cadence")
# The fields an import or an addition sets (status, bounces and history are left alone): the
# columns an import reads, and so those an export writes for a round trip.
SUBSCRIBER_FIELDS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
# Written by `subscribers list`, read so that its CSV imports back: a row whose status is not
# active is skipped, since an import makes a subscription active (no consent or approval
# may be taken for granted from an export).
STATUS_COLUMN = "status"
SUBSCRIBER_COLUMNS = Columns(REQUIRED_COLUMNS, (*OPTIONAL_COLUMNS, STATUS_COLUMN))


@dataclass(frozen=True)
class KnownKeys:
    """The routing rules and directory that audience keys are checked against, read once."""

    rules: RoutingRules
    directory: Directory

    @classmethod
    def read(cls, session: Session, rules: RoutingRules) -> "KnownKeys":
        """The directory as stored now, and the routing rules in use (the runtime's)."""
        return cls(rules, read_directory(session))


def check_key(keys: KnownKeys, audience: str, key: object) -> str:
    """The audience key in its normal form, as the routing rules' key type for it says."""
    text = "" if key is None else str(key)
    try:
        return routing_directory.check_key(keys.rules, audience, text, keys.directory)
    except UnknownAudience as exc:
        # A subscriber's key is a value given by a person: reported like the other fields.
        raise InvalidInput(str(exc)) from exc


def check_subscriber(
    keys: KnownKeys | Session, row: Mapping[str, Any], *, rules: RoutingRules | None = None
) -> dict[str, Any]:
    """A subscriber's fields validated and normalised, or InvalidInput naming the bad value.

    Give a KnownKeys when checking many rows, so the directory is read once; given a session,
    keys are checked against `rules`, which must then be given.
    """
    if isinstance(keys, Session):
        if rules is None:
            raise TypeError("check_subscriber: give the routing rules with a session")
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
        "name": validate.person_name(row.get("name")),
        "language": language,
        "audience": audience,
        "key": key,
        "sectors": sectors,
        "themes": themes,
        "regions": regions,
        "cadence": cadence,
    }


def import_subscribers(
    session: Session,
    path: Path,
    *,
    now: datetime,
    secret: Keys,
    rules: RoutingRules,
) -> ImportReport:
    """Import a subscribers CSV: rows are active subscriptions.

    An import asserts consent was collected, except from whoever is suppressed (unsubscribed,
    bounced, complained, erased, or left that subscription): those rows are skipped and named
    with FILE:LINE. Keys are checked against `rules` (the runtime's); `secret` is
    the key erased addresses were hashed with.
    """
    report = ImportReport(str(path))
    rows = csv_rows(path, SUBSCRIBER_COLUMNS, report)  # the header is checked here, at once
    keys = KnownKeys.read(session, rules)
    # One query for the existing people rather than one per line: imports run to thousands.
    known = {person.email: person for person in session.exec(select(Person)).all()}
    seen: dict[tuple[str, str, str], int] = {}
    for line, row in rows:
        status = str(row.get(STATUS_COLUMN) or "active").strip().lower()
        if status != "active":
            report.skip(line, f"status {status}, not imported (an import would make it active)")
            continue
        try:
            values = check_subscriber(keys, row)
        except InvalidInput as exc:
            report.problem(line, str(exc))
            continue
        which = (values["email"], values["audience"], values["key"])
        if which in seen:
            report.problem(
                line,
                f"address {values['email']} with {values['audience']} {values['key']}".rstrip()
                + f" is already on line {seen[which]}",
            )
            continue
        seen[which] = line
        try:
            _, outcome = add(
                session,
                values,
                origin=Origin.imported(path, line),
                now=now,
                secret=secret,
                known=known,
            )
        except Suppressed as exc:
            report.skip(line, f"suppressed, not imported: {exc}")
            continue
        report.count(outcome)
    session.flush()
    return report


def add_subscriber(
    session: Session,
    *,
    email: str,
    name: str = "",
    language: str | None = None,
    audience: str,
    key: str = "",
    sectors: Iterable[str] = (),
    themes: Iterable[str] = (),
    regions: Iterable[str] = (),
    cadence: str = "monthly",
    now: datetime,
    secret: Keys = "",
    status: str = "active",
    rules: RoutingRules,
    origin: Origin | None = None,
) -> Person:
    """Check the values, then add the subscription (active) or ask for it (pending).

    A known address gains the subscription, keeping their name and language unless given.
    Suppressed for a suppressed or erased address
    (erased ones are recognised only given the `secret` they were hashed with); InvalidInput
    if a value is bad. Returns the person.
    """
    if status not in ("pending", "active"):
        raise InvalidInput(f"status {status!r}: a new subscription is pending or active")
    known = find_person(session, email)
    if known is not None:
        name = name or known.name
        language = language or known.language
    values = check_subscriber(
        KnownKeys.read(session, rules),
        {
            "email": email,
            "name": name,
            "language": language or "en",
            "audience": audience,
            "key": key,
            "sectors": list(sectors),
            "themes": list(themes),
            "regions": list(regions),
            "cadence": cadence,
        },
    )
    origin = origin or Origin.cli("subscribers add")
    if status == "pending":
        wish = Request.of(values)
        person = request(session, wish, origin=origin, now=now).person
    else:
        subscription, _ = add(session, values, origin=origin, now=now, secret=secret)
        found = session.get(Person, subscription.person_id)
        assert found is not None, "the subscription was added with its person"
        person = found
    session.flush()
    return person
