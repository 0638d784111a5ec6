"""Approval: the stored editions an editor lists, reads and approves (`diffusion digest`)."""

from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db
from diffusion.errors import InvalidInput, UnknownRecord
from diffusion.models import Edition


def list_editions(
    engine: Engine, *, period: str | None = None, status: str | None = None
) -> Sequence[Edition]:
    """Stored editions, newest period first."""
    query = select(Edition)
    if period:
        query = query.where(Edition.period == period)
    if status:
        query = query.where(Edition.status == status)
    with db.session_scope(engine) as session:
        return session.exec(query.order_by(col(Edition.period).desc(), col(Edition.segment))).all()


def get_edition(engine: Engine, edition_id: int) -> Edition:
    with db.session_scope(engine) as session:
        edition = session.get(Edition, edition_id)
    if edition is None:
        raise UnknownRecord(f"no edition {edition_id}; see `diffusion digest list`")
    return edition


def approve_editions(
    engine: Engine, *, now: datetime, edition_ids: Sequence[int] = (), period: str | None = None
) -> list[int]:
    """Approve the given drafts, or every draft (of `period`); returns the ids approved.

    One UPDATE ... WHERE status = 'draft': two editors approving at once approve each once.
    """
    table = cast(sa.Table, Edition.__table__)  # type: ignore[attr-defined]
    with db.session_scope(engine) as session:
        if edition_ids:
            found = dict(
                session.execute(
                    sa.select(table.c.id, table.c.status).where(table.c.id.in_(edition_ids))
                ).all()
            )
            for edition_id in edition_ids:
                if edition_id not in found:
                    raise UnknownRecord(f"no edition {edition_id}; see `diffusion digest list`")
                if found[edition_id] != "draft":
                    raise InvalidInput(
                        f"edition {edition_id} is {found[edition_id]}, not a draft: "
                        "only drafts wait for approval"
                    )
        statement = (
            sa.update(table)
            .where(table.c.status == "draft")
            .values(status="approved", approved_at=now)
            .returning(table.c.id)
        )
        if edition_ids:
            statement = statement.where(table.c.id.in_(edition_ids))
        if period:
            statement = statement.where(table.c.period == period)
        return sorted(session.execute(statement).scalars())
