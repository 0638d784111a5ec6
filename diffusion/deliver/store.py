"""The send loop's outbox on a database: each call one short transaction, outages named."""

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from diffusion import db
from diffusion.config import Settings
from diffusion.deliver import outbox
from diffusion.deliver.rows import Claimed, Result
from diffusion.errors import OutboxUnavailable, UnknownRecord
from diffusion.models import Edition

# What a database that stopped answering raises: refused or dropped connections, a server
# shutting down or terminating our backend. Anything else (a constraint, a bug) is not an outage.
_OUTAGES = (sa.exc.OperationalError, sa.exc.InterfaceError)


@contextmanager
def answering(engine: Engine) -> Iterator[Session]:
    """A session scope whose connection losses become OutboxUnavailable, in one line."""
    try:
        with db.session_scope(engine) as session:
            yield session
    except _OUTAGES as exc:
        raise OutboxUnavailable(f"the database stopped answering: {_first_line(exc)}") from exc
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise OutboxUnavailable(f"the database stopped answering: {_first_line(exc)}") from exc


def _first_line(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig or exc).strip()
    return text.splitlines()[0] if text else type(exc.orig or exc).__name__


class DatabaseOutbox:
    """The outbox of these editions, in the database behind `engine`."""

    def __init__(self, engine: Engine, settings: Settings, edition_ids: Sequence[int]) -> None:
        self.engine = engine
        self.settings = settings
        self.edition_ids = list(edition_ids)
        self.lease = timedelta(seconds=settings.send.lease_seconds)

    def claim(self, worker: str, *, limit: int, now: datetime) -> list[Claimed]:
        with answering(self.engine) as session:
            return outbox.claim(session, worker, edition_ids=self.edition_ids, now=now, limit=limit)

    def edition(self, edition_id: int) -> Edition:
        with answering(self.engine) as session:
            edition = session.get(Edition, edition_id)
            if edition is None:
                raise UnknownRecord(f"edition {edition_id} is not in the database")
            return edition

    def record(self, worker: str, results: Sequence[Result], *, now: datetime) -> None:
        with answering(self.engine) as session:
            outbox.record(session, results, self.settings, now=now, worker=worker)

    def renew(self, worker: str, outbox_ids: Collection[int], *, now: datetime) -> set[int]:
        with answering(self.engine) as session:
            return outbox.renew(session, worker, outbox_ids, now=now)

    def release(self, worker: str, outbox_ids: Collection[int], *, now: datetime) -> None:
        with answering(self.engine) as session:
            outbox.release(session, list(outbox_ids), now=now, worker=worker)

    def release_others(self, worker: str, keep: Collection[int], *, now: datetime) -> int:
        with answering(self.engine) as session:
            return outbox.release_others(session, worker, keep, now=now)

    def reclaim(self, *, now: datetime) -> int:
        with answering(self.engine) as session:
            return outbox.reclaim(session, now=now, lease=self.lease)

    def next_retry(self) -> datetime | None:
        with answering(self.engine) as session:
            return outbox.next_retry(session, self.edition_ids)
