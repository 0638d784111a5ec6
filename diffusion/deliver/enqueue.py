"""Queueing: approved editions become outbox rows for their segment, then `sending`."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db
from diffusion.config import Settings
from diffusion.deliver import outbox
from diffusion.models import Edition


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
            added += outbox.enqueue_segment(session, fresh, settings, now=now)
            fresh.status = "sending"
            session.add(fresh)
    return added
