"""Insert-or-ignore and insert-or-update: one helper each, alike on SQLite and PostgreSQL."""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from diffusion import db
from diffusion.models import Edition, JobRun

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _edition(period: str, subject: str) -> dict[str, object]:
    return {
        "segment": "ngo:ifla|en|monthly",
        "audience": "ngo",
        "key": "ifla",
        "period": period,
        "subject": subject,
        "created_at": NOW,
    }


def test_a_taken_unique_key_leaves_the_row_out_and_keeps_the_first(engine: Engine) -> None:
    with db.session_scope(engine) as session:
        first = db.insert_or_ignore(session, Edition, ["segment", "period"]).values(
            _edition("2026-11", "first")
        )
        inserted = session.execute(first.returning(col(Edition.id))).all()
        assert len(inserted) == 1
    with db.session_scope(engine) as session:
        again = db.insert_or_ignore(session, Edition, ["segment", "period"]).values(
            _edition("2026-11", "second")
        )
        assert session.execute(again.returning(col(Edition.id))).all() == []
        other = db.insert_or_ignore(session, Edition, ["segment", "period"]).values(
            _edition("2026-12", "next month")
        )
        assert len(session.execute(other.returning(col(Edition.id))).all()) == 1
    with Session(engine) as session:
        rows = session.exec(select(Edition).order_by(col(Edition.period))).all()
        assert [(row.period, row.subject) for row in rows] == [
            ("2026-11", "first"),
            ("2026-12", "next month"),
        ]


def test_many_rows_at_once_return_only_those_inserted(engine: Engine) -> None:
    """As the outbox enqueues: one executemany, RETURNING names the rows that went in."""
    table = JobRun.__table__  # type: ignore[attr-defined]
    statement = db.insert_or_ignore(engine, JobRun, ["name"]).returning(table.c.name)
    with engine.begin() as connection:
        rows = [{"name": "collect", "last_outcome": "ok"}, {"name": "monthly", "last_outcome": ""}]
        assert sorted(connection.execute(statement, rows).scalars()) == ["collect", "monthly"]
    with engine.begin() as connection:
        rows = [
            {"name": "monthly", "last_outcome": "again"},
            {"name": "weekly", "last_outcome": ""},
        ]
        assert list(connection.execute(statement, rows).scalars()) == ["weekly"]
        outcomes = dict(connection.execute(sa.select(table.c.name, table.c.last_outcome)).all())
    assert outcomes == {"collect": "ok", "monthly": "", "weekly": ""}


def test_insert_or_update_writes_the_new_values_over_a_taken_key(engine: Engine) -> None:
    table = JobRun.__table__  # type: ignore[attr-defined]
    for outcome in ("ok", "failed: feed down"):
        statement = db.insert_or_update(engine, table, ["name"], {"last_outcome": outcome}).values(
            name="collect", last_outcome=outcome
        )
        with engine.begin() as connection:
            connection.execute(statement)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table.c.name, table.c.last_outcome)).all()
    assert [tuple(row) for row in rows] == [("collect", "failed: feed down")]
