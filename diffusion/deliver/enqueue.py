"""Queueing: approved editions become outbox rows for their segment's members, then `sending`."""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from diffusion import db, subscriptions
from diffusion.config import Settings
from diffusion.deliver.message import message_ids
from diffusion.deliver.outbox import batched
from diffusion.models import Edition, OutboxMessage

_outbox: sa.Table = OutboxMessage.__table__  # type: ignore[attr-defined]


class Member(Protocol):
    """What enqueueing reads of a person: a `Person` row, or a lighter record."""

    @property
    def id(self) -> int | None: ...


def segment_subscribers(
    session: Session, edition: Edition, batch_size: int = 5000
) -> Iterator[Member]:
    """The active people whose active subscriptions of the edition's language and cadence
    make up its segment, read in pages by id, never a whole list in memory."""
    for person_id, segment in subscriptions.people_segments(
        session,
        language=edition.language,
        cadence=edition.cadence,
        holding=(edition.audience, edition.key),
        batch_size=batch_size,
    ):
        if segment.id == edition.segment:
            yield _Member(person_id)


@dataclass(frozen=True, slots=True)
class _Member:
    id: int


def enqueue(
    session: Session,
    edition: Edition,
    subscribers: Iterable[Member],
    settings: Settings,
    *,
    now: datetime,
) -> int:
    """Add the rows that are missing for these subscribers; returns how many were added."""
    added = 0
    message_id = message_ids(edition, settings)
    for chunk in batched(subscribers, 1000):
        rows = [
            {
                "edition_id": edition.id,
                "subscriber_id": subscriber.id,
                "state": "queued",
                "attempts": 0,
                "message_id": message_id(subscriber.id or 0),
                "updated_at": now,
            }
            for subscriber in chunk
        ]
        statement = (
            db.insert_or_ignore(session, _outbox, ["edition_id", "subscriber_id"]).returning(
                _outbox.c.id
            )  # only the inserted rows: rowcount is not portable here
        )
        # executemany: compiled once, sent in batches (SQLAlchemy's insertmanyvalues)
        added += len(session.execute(statement, rows).all())
    return added


def enqueue_segment(
    session: Session, edition: Edition, settings: Settings, *, now: datetime
) -> int:
    """Queue the edition for every active member of its segment; rows already queued stay.

    A segment is a person's whole set of subscriptions, worked out per person by the
    subscriptions module (among the holders of the edition's first subscription only), so the
    members are chosen there and inserted in batches, not by one INSERT ... SELECT.
    """
    return enqueue(session, edition, segment_subscribers(session, edition), settings, now=now)


def pending_editions(
    engine: Engine,
    *,
    edition_ids: Sequence[int] | None = None,
    period: str | None = None,
    audience: str | None = None,
    resume_only: bool = False,
) -> list[Edition]:
    """The editions to send: approved ones (and `sending` ones, to resume), in id order."""
    statuses = ("sending",) if resume_only else ("approved", "sending")
    query = select(Edition).where(col(Edition.status).in_(statuses)).order_by(col(Edition.id))
    if edition_ids is not None:
        query = query.where(col(Edition.id).in_(edition_ids))
    if period:
        query = query.where(Edition.period == period)
    if audience:
        query = query.where(Edition.audience == audience)
    with db.session_scope(engine) as session:
        return list(session.exec(query).all())


def enqueue_editions(
    engine: Engine, settings: Settings, editions: Sequence[Edition], *, now: datetime
) -> int:
    """Queue each approved edition for its segment; status and rows change in one transaction."""
    added = 0
    for edition in editions:
        with db.session_scope(engine) as session:
            fresh = session.get(Edition, edition.id)
            if fresh is None or fresh.status != "approved":
                continue  # already queued (by us earlier, or by a concurrent worker)
            added += enqueue_segment(session, fresh, settings, now=now)
            fresh.status = "sending"
            session.add(fresh)
    return added
