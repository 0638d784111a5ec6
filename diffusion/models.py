"""The tables: directory, sources and items, people and subscriptions, editions, the outbox."""

# No `from __future__ import annotations` here: SQLModel reads the annotations at class creation.
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import JSON, Column, Field, SQLModel

CONTENT_KINDS = (
    "ngo_action",
    "ngo_plan",
    "field_office_activity",
    "programme_update",
    "forum_conclusion",
    "event",
)
REFERENCE_LISTS = ("ngo_directory", "focal_points", "expert_ngos", "national_commissions")
# The five programme Sectors by code; their names in each language are in the catalogue
# (diffusion.vocabulary.sector_name).
SECTORS = ("ED", "SC", "SHS", "CLT", "CI")
# Every item's tags are a dict of these keys, each a list of strings.
TAG_KEYS = (
    "sectors",
    "countries",
    "regions",
    "themes",
    "sdgs",
    "organisations",
    "field_offices",
    "forums",
)
AUDIENCES = (
    "ngo",
    "sector",
    "field_office",
    "member_state",
    "national_commission",
    "liaison_committee",
    "public",
)
CADENCES = ("monthly", "weekly")
# A person's global status: only `active` people are mailed; the last three are suppressions.
PERSON_STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
# A subscription's own status; `awaiting_approval` waits for an editor (private audiences).
SUBSCRIPTION_STATUSES = ("pending", "awaiting_approval", "active", "left")
# What `subscribers list --status` filters on: a row's status is its person's when that is not
# active, else its subscription's.
SUBSCRIBER_STATUSES = tuple(dict.fromkeys(PERSON_STATUSES + SUBSCRIPTION_STATUSES))
EDITION_STATUSES = ("draft", "approved", "sending", "sent", "empty")
OUTBOX_STATES = ("queued", "sending", "sent", "failed_temporary", "failed_permanent")


def utcnow() -> datetime:
    """The current time in UTC; for defaults only: logic takes `now=` from its caller."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back as aware UTC on SQLite and PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give timestamps in UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _timestamp(nullable: bool = False, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True, index=index))
    return Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=index)
    )


class Organisation(SQLModel, table=True):
    """An NGO in official partnership: the NGO directory."""

    __tablename__ = "organisations"
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, index=True, max_length=80)
    name: str
    acronym: str | None = None
    sectors: list[str] = _json_list()
    themes: list[str] = _json_list()
    countries: list[str] = _json_list()
    contact_email: str | None = None
    website: str | None = None
    partnership_status: str = "consultative"
    updated_at: datetime = _timestamp()


class Sector(SQLModel, table=True):
    """A programme Sector of the Secretariat (ED, SC, SHS, CLT, CI)."""

    __tablename__ = "sectors"
    code: str = Field(primary_key=True, max_length=8)
    name: str
    name_fr: str


class FocalPoint(SQLModel, table=True):
    """A Sector's focal point for NGOs."""

    __tablename__ = "focal_points"
    __table_args__ = (sa.UniqueConstraint("sector_code", "email"),)
    id: int | None = Field(default=None, primary_key=True)
    sector_code: str = Field(foreign_key="sectors.code", index=True)
    name: str
    email: str
    role: str | None = None
    updated_at: datetime = _timestamp()


class FieldOffice(SQLModel, table=True):
    """A UNESCO Field Office and the countries it covers."""

    __tablename__ = "field_offices"
    code: str = Field(primary_key=True, max_length=40)
    name: str
    city: str
    country: str = Field(max_length=2)
    countries: list[str] = _json_list()
    email: str | None = None
    website: str | None = None
    updated_at: datetime = _timestamp()


class NationalCommission(SQLModel, table=True):
    """A National Commission for UNESCO: one per Member State, the NGOs' contact in the country."""

    __tablename__ = "national_commissions"
    country: str = Field(primary_key=True, max_length=2)
    name: str
    contact_name: str | None = None
    email: str | None = None
    website: str | None = None
    updated_at: datetime = _timestamp()


class Forum(SQLModel, table=True):
    """An International NGO forum or conference, with the themes and countries it concerns."""

    __tablename__ = "forums"
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, index=True, max_length=80)
    name: str
    starts_on: date | None = None
    ends_on: date | None = None
    city: str | None = None
    themes: list[str] = _json_list()
    sectors: list[str] = _json_list()
    countries: list[str] = _json_list()
    website: str | None = None
    updated_at: datetime = _timestamp()


class Source(SQLModel, table=True):
    """An RSS/Atom feed collected on schedule, with its default tags and HTTP validators."""

    __tablename__ = "sources"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    url: str = Field(unique=True)
    kind: str = Field(description="Content kind given to the source's entries.")
    language: str | None = None
    public: bool = True
    tags: dict[str, list[str]] = _json_dict()
    etag: str | None = None
    last_modified: str | None = None
    last_fetched_at: datetime | None = _timestamp(nullable=True)
    last_status: int | None = None
    last_error: str | None = None
    last_new_items: int = 0
    # A 429 or 503 with Retry-After: the server asked not to be fetched again before this.
    retry_not_before: datetime | None = _timestamp(nullable=True)
    created_at: datetime = _timestamp()


class Item(SQLModel, table=True):
    """One update: an NGO action, a forum conclusion, a Field Office activity..."""

    __tablename__ = "items"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)
    guid: str = Field(unique=True, index=True)
    link: str | None = Field(default=None, index=True)
    title: str
    summary: str = ""
    body_html: str = ""
    language: str = "en"
    # {"fr": {"title": ..., "summary": ..., "body_html": ..., "link": ...}}
    translations: dict[str, dict[str, str]] = _json_dict()
    tags: dict[str, list[str]] = _json_dict()
    public: bool = True
    published_at: datetime = _timestamp(index=True)
    collected_at: datetime = _timestamp()
    content_hash: str = Field(index=True, max_length=64)
    source_id: int | None = Field(default=None, foreign_key="sources.id", index=True)
    origin: str = Field(default="feed", description="feed, editorial or demo")


class Person(SQLModel, table=True):
    """Someone who receives editions: one address, a name, a language and a global status.

    The global status says whether they may be mailed at all (`active`); unsubscribed, bounced
    and complained people are suppressed whatever their subscriptions say. Only
    diffusion/subscriptions/ changes these rows.
    """

    __tablename__ = "people"
    # AUTOINCREMENT on SQLite: an id is never given again after a removal, so a link signed for
    # one person never opens another's page (PostgreSQL's sequences never reuse one either).
    __table_args__ = {"sqlite_autoincrement": True}
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True, description="Normalised address.")
    name: str = ""
    language: str = "en"
    status: str = Field(default="active", index=True)
    soft_bounces: int = 0
    # The bounce score's clock: a soft bounce after a quiet period starts the score again.
    last_bounce_at: datetime | None = _timestamp(nullable=True)
    consent_at: datetime | None = _timestamp(nullable=True)
    status_changed_at: datetime = _timestamp()
    created_at: datetime = _timestamp()


class Subscription(SQLModel, table=True):
    """One audience (and key) a person follows, narrowed by their choices, with its own status."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.UniqueConstraint("person_id", "audience", "key"),
        {"sqlite_autoincrement": True},
    )
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="people.id", index=True)
    audience: str = Field(index=True)
    key: str = Field(default="", description="Audience key: Sector, country, office or NGO slug.")
    sectors: list[str] = _json_list()
    themes: list[str] = _json_list()
    regions: list[str] = _json_list()
    cadence: str = "monthly"
    status: str = Field(default="active", index=True)
    status_changed_at: datetime = _timestamp()
    created_at: datetime = _timestamp()


class ConsentEvent(SQLModel, table=True):
    """One change of a person's or a subscription's status: when, why and from where."""

    __tablename__ = "consent_events"
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(index=True)  # no foreign key: erasure deletes these with the person
    subscription_id: int | None = None
    at: datetime = _timestamp()
    action: str = Field(max_length=40)
    from_status: str = ""
    to_status: str = ""
    origin: str = Field(max_length=20, description="web, import, cli, bounce, complaint, ...")
    detail: str = ""


class Suppression(SQLModel, table=True):
    """An erased address, kept only as a keyed hash, so that no import can mail it again."""

    __tablename__ = "suppressions"
    address_hash: str = Field(primary_key=True, max_length=64)
    reason: str = "erased"
    at: datetime = _timestamp()


class Edition(SQLModel, table=True):
    """One digest built for one segment and period, rendered once, personalised at send time."""

    __tablename__ = "editions"
    __table_args__ = (sa.UniqueConstraint("segment", "period"),)
    id: int | None = Field(default=None, primary_key=True)
    segment: str = Field(index=True, description="Canonical key of the subscribers' segment.")
    audience: str
    key: str = ""
    language: str = "en"
    cadence: str = "monthly"
    period: str = Field(index=True, description="2026-11 for a month, 2026-W47 for a week.")
    subject: str = ""
    html: str = ""
    text: str = ""
    item_count: int = 0
    status: str = Field(default="draft", index=True)
    created_at: datetime = _timestamp()
    approved_at: datetime | None = _timestamp(nullable=True)
    sent_at: datetime | None = _timestamp(nullable=True)


class OutboxMessage(SQLModel, table=True):
    """One edition to one person: the unit of sending, retried until sent or failed."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.UniqueConstraint("edition_id", "subscriber_id"),
        # Claims walk this index in id order and stop after a batch: the rows already sent
        # are never read again, so a claim costs the same at the end of a send as at its start.
        # With id in it, PostgreSQL too reads a claim's batch in order and stops (0007).
        sa.Index("ix_outbox_edition_state_id", "edition_id", "state", "id"),
        sa.Index("ix_outbox_state_next_attempt", "state", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    edition_id: int = Field(foreign_key="editions.id")
    # The person (people.id): the column kept its name when subscribers became people, who kept
    # their ids, so that rows queued before the change stay valid.
    subscriber_id: int = Field(foreign_key="people.id", index=True)
    state: str = "queued"
    attempts: int = 0
    next_attempt_at: datetime | None = _timestamp(nullable=True)
    last_error: str | None = None
    message_id: str | None = None
    claimed_by: str | None = None
    claimed_at: datetime | None = _timestamp(nullable=True)
    sent_at: datetime | None = _timestamp(nullable=True)
    updated_at: datetime = _timestamp()
    relay: str | None = None  # host:port of the relay that took it (0011)


class BounceReportRead(SQLModel, table=True):
    """A bounce report already read: an mbox keeps every report, and a run can be repeated or
    run twice at once, yet each report counts once. Written with what the report changed."""

    __tablename__ = "bounce_reports_read"
    key: str = Field(primary_key=True, max_length=64)  # sha256 of its Message-ID, or its bytes
    read_at: datetime = _timestamp()


class JobRun(SQLModel, table=True):
    """The last run of each scheduled job, shared by every `serve` process on the database."""

    __tablename__ = "job_runs"
    name: str = Field(primary_key=True, max_length=40)
    last_started_at: datetime | None = _timestamp(nullable=True)
    last_finished_at: datetime | None = _timestamp(nullable=True)
    last_outcome: str = ""
