"""The outbox: one row per edition and subscriber, claimed in batches, retried until final."""

import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, col, select

from diffusion import subscriptions
from diffusion.config import Settings
from diffusion.contracts import Recipient
from diffusion.deliver.rows import Claimed, Result
from diffusion.models import Edition, OutboxMessage, Person

# A row left in `sending` this long was claimed by a worker that died or hangs: send it again.
LEASE = timedelta(minutes=10)
PENDING_STATES = ("queued", "sending", "failed_temporary")
_table: sa.Table = OutboxMessage.__table__  # type: ignore[attr-defined]
_subscribers: sa.Table = Person.__table__  # type: ignore[attr-defined]
T = TypeVar("T")
__all__ = ["Claimed", "Result"]


def batched(values: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to `size` values (itertools.batched arrives with Python 3.12)."""
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


def worker_name() -> str:
    """host:pid:random, so that a dead local worker's rows can be recognised and taken back."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def _due_retries(edition_ids: Sequence[int], now: datetime) -> Any:
    return sa.and_(
        _table.c.edition_id.in_(edition_ids),
        _table.c.state == "failed_temporary",
        _table.c.next_attempt_at <= now,
    )


def _queued(edition_ids: Sequence[int], now: datetime) -> Any:
    return sa.and_(_table.c.edition_id.in_(edition_ids), _table.c.state == "queued")


def claim(
    session: Session, worker: str, *, edition_ids: Sequence[int], now: datetime, limit: int
) -> list[Claimed]:
    """Mark up to `limit` due rows `sending` for this worker and return them.

    Deferred rows that are due come first, then queued ones in (edition, id) order. One UPDATE
    statement for each: on PostgreSQL the rows are locked with SKIP LOCKED so that concurrent
    workers take disjoint batches; on SQLite the statement holds the single write lock. They
    are separate so that each walks its own index and stops at `limit` rows.
    """
    claimed: list[Any] = []
    postgres = session.get_bind().dialect.name == "postgresql"
    for due in (_due_retries, _queued):
        if len(claimed) >= limit:
            break
        chosen = (
            sa.select(_table.c.id)
            .where(due(edition_ids, now))
            .order_by(_table.c.edition_id, _table.c.id)
            .limit(limit - len(claimed))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        if postgres:
            # `id = ANY(ARRAY(subquery))` runs the subquery once, whatever the statistics say:
            # with `id IN (subquery)` and stale statistics (right after a large enqueue) the
            # planner may join and re-run the LIMIT ... SKIP LOCKED subquery once per row, and
            # the first claim then takes every queued row, in time growing with its square.
            # The chosen rows are locked: no need to check them again, which would let the
            # planner walk the state index and filter by id instead of looking the ids up.
            picked: Any = _table.c.id == sa.any_(sa.func.array(chosen))
        else:
            picked = sa.and_(_table.c.id.in_(chosen), due(edition_ids, now))
        rows = session.execute(
            sa.update(_table)
            .where(picked)
            .values(state="sending", claimed_by=worker, claimed_at=now, updated_at=now)
            .returning(
                _table.c.id,
                _table.c.edition_id,
                _table.c.subscriber_id,
                _table.c.attempts,
                _table.c.message_id,
            )
        ).all()
        claimed += sorted(rows, key=lambda row: (row[1], row[0]))  # RETURNING has no order
    session.commit()
    if not claimed:
        return []
    # Rows unpacked by position: attribute access on result rows costs several times more.
    people = {
        person[0]: person[1:]
        for person in session.execute(
            sa.select(
                _subscribers.c.id,
                _subscribers.c.email,
                _subscribers.c.name,
                _subscribers.c.language,
                _subscribers.c.status,
            ).where(_subscribers.c.id.in_([row[2] for row in claimed]))
        )
    }
    return [
        Claimed(
            outbox_id,
            edition_id,
            attempts,
            message_id,
            Recipient(subscriber_id, *people[subscriber_id][:3]),
            people[subscriber_id][3],
        )
        for outbox_id, edition_id, subscriber_id, attempts, message_id in claimed
    ]


def _held_by(worker: str | None) -> Any:
    """Rows this worker still holds: what it may write over (None: whoever holds them)."""
    if worker is None:
        return _table.c.state == "sending"
    return sa.and_(_table.c.state == "sending", _table.c.claimed_by == worker)


def release(
    session: Session, outbox_ids: Sequence[int], *, now: datetime, worker: str | None = None
) -> None:
    """Give claimed rows back, unsent (a worker stopping before it got to them)."""
    for chunk in batched(outbox_ids, 1000):
        session.execute(
            sa.update(_table)
            .where(_table.c.id.in_(chunk), _held_by(worker))
            .values(state="queued", claimed_by=None, claimed_at=None, updated_at=now)
        )


def release_others(session: Session, worker: str, keep: Iterable[int], *, now: datetime) -> int:
    """Give back what `worker` holds beyond `keep`: claims made as its connection dropped,
    committed by the database though their answer never reached the worker."""
    kept = set(keep)
    stray = [
        outbox_id
        for outbox_id in session.execute(sa.select(_table.c.id).where(_held_by(worker))).scalars()
        if outbox_id not in kept
    ]
    release(session, stray, now=now, worker=worker)
    return len(stray)


def renew(session: Session, worker: str, outbox_ids: Iterable[int], *, now: datetime) -> set[int]:
    """Extend the lease of the rows `worker` still holds among these; returns their ids."""
    kept: set[int] = set()
    for chunk in batched(outbox_ids, 1000):
        kept.update(
            session.execute(
                sa.update(_table)
                .where(_table.c.id.in_(chunk), _held_by(worker))
                .values(claimed_at=now)
                .returning(_table.c.id)
            ).scalars()
        )
    return kept


def record(
    session: Session,
    results: Sequence[Result],
    settings: Settings,
    *,
    now: datetime,
    worker: str | None = None,
) -> None:
    """Write the outcomes of a batch: sent, retried later with backoff, or failed for good.

    With `worker`, only over the rows it still holds: a worker whose lease was taken over
    writes nothing over the rows another worker now sends. A relay fault puts the row back in
    the queue with its attempts untouched: the relay failed, not the recipient.
    """
    held = _held_by(worker)
    sent = [r for r in results if r.kind == "sent"]
    # Every sent row gets the same values: one statement per attempt count (usually one).
    for attempts, relay_name in sorted({(r.attempts, r.relay or "") for r in sent}):
        ids = [r.outbox_id for r in sent if (r.attempts, r.relay or "") == (attempts, relay_name)]
        for chunk in batched(ids, 1000):
            session.execute(
                sa.update(_table)
                .where(_table.c.id.in_(chunk), held if worker else sa.true())
                .values(
                    state="sent",
                    attempts=attempts + 1,
                    sent_at=now,
                    last_error=None,
                    next_attempt_at=None,
                    updated_at=now,
                    relay=relay_name or None,
                )
            )
    named = [{"b_id": r.outbox_id, "b_mid": r.message_id} for r in sent if r.message_id]
    if named:
        session.execute(
            sa.update(_table)
            .where(_table.c.id == sa.bindparam("b_id"))
            .values(message_id=sa.bindparam("b_mid")),
            named,
        )
    relay = [r for r in results if r.kind == "relay"]
    if relay:
        session.execute(
            sa.update(_table)
            .where(_table.c.id == sa.bindparam("b_id"), held)
            .values(
                state="queued",
                last_error=sa.bindparam("b_error"),
                claimed_by=None,
                claimed_at=None,
                updated_at=now,
            ),
            [{"b_id": r.outbox_id, "b_error": r.reply[:1000]} for r in relay],
        )
    failed = []
    for r in results:
        if r.kind in ("sent", "relay"):
            continue
        attempts = r.attempts + 1
        final = r.kind in ("permanent", "skipped") or attempts >= settings.send.max_attempts
        delay = settings.send.retry_base_seconds * 2 ** (attempts - 1)
        failed.append(
            {
                "b_id": r.outbox_id,
                "b_state": "failed_permanent" if final else "failed_temporary",
                "b_attempts": attempts,
                "b_next": None if final else now + timedelta(seconds=delay),
                "b_error": r.reply[:1000],
                "b_mid": r.message_id,
            }
        )
    refused = {r.outbox_id: r.reply for r in results if r.kind == "permanent"}
    if refused:
        _refusals(session, refused, now=now)
    if failed:
        session.execute(
            sa.update(_table)
            # Never undo a `sent` written by another worker that re-sent a reclaimed row.
            .where(
                _table.c.id == sa.bindparam("b_id"),
                held if worker else _table.c.state != "sent",
            )
            .values(
                state=sa.bindparam("b_state"),
                attempts=sa.bindparam("b_attempts"),
                next_attempt_at=sa.bindparam("b_next"),
                last_error=sa.bindparam("b_error"),
                message_id=sa.func.coalesce(sa.bindparam("b_mid"), _table.c.message_id),
                claimed_by=None,
                updated_at=now,
            ),
            failed,
        )


def _refusals(session: Session, replies: dict[int, str], *, now: datetime) -> None:
    """A recipient-specific permanent refusal (550 5.1.1...) is a hard bounce of that person."""
    people = session.execute(
        sa.select(_table.c.id, _table.c.subscriber_id).where(_table.c.id.in_(list(replies)))
    ).all()
    subscriptions.refused_at_send(
        session, {person_id: replies[outbox_id] for outbox_id, person_id in people}, now=now
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim(session: Session, *, now: datetime, lease: timedelta = LEASE) -> int:
    """Put back in the queue the rows stuck in `sending`: lease expired, or local worker gone."""
    stale = session.execute(
        sa.update(_table)
        .where(_table.c.state == "sending", _table.c.claimed_at < now - lease)
        .values(state="queued", claimed_by=None, claimed_at=None, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    host = socket.gethostname()
    owners = session.execute(
        sa.select(_table.c.claimed_by).where(_table.c.state == "sending").distinct()
    ).scalars()
    gone = []
    for owner in owners:
        owner_host, _, rest = (owner or "").partition(":")
        pid = rest.partition(":")[0]
        if owner_host == host and pid.isdigit() and not _pid_alive(int(pid)):
            gone.append(owner)
    if gone:
        stale += session.execute(
            sa.update(_table)
            .where(_table.c.state == "sending", _table.c.claimed_by.in_(gone))
            .values(state="queued", claimed_by=None, claimed_at=None, updated_at=now)
        ).rowcount  # type: ignore[attr-defined]
    return int(stale)


def counts(session: Session, edition_ids: Sequence[int] | None = None) -> dict[int, dict[str, int]]:
    """Rows per state, per edition: {edition_id: {state: count}}."""
    query = sa.select(_table.c.edition_id, _table.c.state, sa.func.count()).group_by(
        _table.c.edition_id, _table.c.state
    )
    if edition_ids is not None:
        query = query.where(_table.c.edition_id.in_(edition_ids))
    out: dict[int, dict[str, int]] = {}
    for edition_id, state, number in session.execute(query):
        out.setdefault(edition_id, {})[state] = number
    return out


def last_errors(
    session: Session, edition_ids: Sequence[int] | None = None, *, per_edition: int = 3
) -> dict[int, list[tuple[str, int]]]:
    """The latest distinct errors of the rows not sent yet, per edition: [(error, rows)]."""
    latest = sa.func.max(_table.c.updated_at)
    query = (
        sa.select(_table.c.edition_id, _table.c.last_error, sa.func.count(), latest)
        .where(_table.c.state != "sent", _table.c.last_error.is_not(None))
        .group_by(_table.c.edition_id, _table.c.last_error)
        .order_by(_table.c.edition_id, latest.desc())
    )
    if edition_ids is not None:
        query = query.where(_table.c.edition_id.in_(edition_ids))
    out: dict[int, list[tuple[str, int]]] = {}
    for edition_id, error, number, _when in session.execute(query):
        found = out.setdefault(edition_id, [])
        if len(found) < per_edition:
            found.append((error, number))
    return out


def next_retry(session: Session, edition_ids: Sequence[int]) -> datetime | None:
    """When the earliest deferred row of these editions is due again."""
    value = session.execute(
        sa.select(sa.func.min(OutboxMessage.next_attempt_at)).where(
            col(OutboxMessage.edition_id).in_(edition_ids),
            col(OutboxMessage.state) == "failed_temporary",
        )
    ).scalar()
    return value if isinstance(value, datetime) else None


def retry_now(session: Session, *, now: datetime, edition_ids: Sequence[int] | None = None) -> int:
    """Put every deferred (failed_temporary) row back in the queue, due now."""
    statement = (
        sa.update(_table)
        .where(_table.c.state == "failed_temporary")
        .values(state="queued", next_attempt_at=None, updated_at=now)
    )
    if edition_ids is not None:
        statement = statement.where(_table.c.edition_id.in_(edition_ids))
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def finish_editions(session: Session, edition_ids: Sequence[int], *, now: datetime) -> list[int]:
    """Mark `sent` the editions with nothing left queued, sending or deferred."""
    pending = counts(session, edition_ids)
    done = []
    for edition in session.exec(
        select(Edition).where(
            col(Edition.id).in_(edition_ids), col(Edition.status).in_(("approved", "sending"))
        )
    ):
        if not any(pending.get(edition.id or 0, {}).get(state) for state in PENDING_STATES):
            edition.status = "sent"
            edition.sent_at = now
            session.add(edition)
            done.append(edition.id or 0)
    return done
