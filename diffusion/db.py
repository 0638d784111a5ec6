"""The database: engine, sessions and Alembic migrations, alike on SQLite and PostgreSQL."""

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel

from diffusion.config import Settings
from diffusion.errors import DatabaseError, SchemaNotReady

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
P = ParamSpec("P")
T = TypeVar("T")


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling of the URL was given."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the web pages) go on while a sender writes; the timeout queues writers.
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL still survives a crash of the process (kill -9); only a power cut may
    # lose the last commits. It spares an fsync per commit, which the send loop makes often.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for the URL; SQLite files get their folder created and sane pragmas."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _private_file(Path(path))
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A connect timeout, so that a database host gone silent is an error, not a hang.
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600), or make it so.

    It holds every subscriber's address; SQLite gives its -wal and -shm files the mode of the
    database file.
    """
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return  # not ours to create (read-only place): SQLite says what is wrong
    try:
        if os.fstat(descriptor).st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
    except OSError:
        pass  # owned by someone else: readable as it is, nothing we may change
    finally:
        os.close(descriptor)


def engine_for(settings: Settings) -> Engine:
    return make_engine(settings.database)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def once_more_on_conflict(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work` (a unit of work in its own session), run again once if it lost a race on a unique
    key: two requests creating the same row at once; the second run finds the row the first
    one committed."""
    try:
        return work(*args, **kwargs)
    except sa.exc.IntegrityError:
        return work(*args, **kwargs)


# What a statement is run on: its dialect says which INSERT ... ON CONFLICT to write.
Bind = Engine | Connection | Session
Upsert = postgresql.Insert | sqlite.Insert


def _dialect_insert(bind: Bind, table: sa.Table | type[SQLModel]) -> Upsert:
    """The INSERT of the bind's dialect, the one that knows ON CONFLICT (SQLite, PostgreSQL)."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    target = table if isinstance(table, sa.Table) else table.__table__  # type: ignore[attr-defined]
    name = engine.dialect.name
    if name == "postgresql":
        return postgresql.insert(target)
    if name == "sqlite":
        return sqlite.insert(target)
    raise DatabaseError(f"database {name!r}: Diffusion supports SQLite and PostgreSQL")


def insert_or_ignore(bind: Bind, table: sa.Table | type[SQLModel], unique: Sequence[str]) -> Upsert:
    """INSERT ... ON CONFLICT (`unique`) DO NOTHING, on SQLite and PostgreSQL alike.

    A row whose `unique` columns are taken is left out without an error, also when another
    process inserted it a moment before; add `.returning(table.c.id)` to learn which rows went
    in (rowcount is not portable for an executemany).
    """
    return _dialect_insert(bind, table).on_conflict_do_nothing(index_elements=list(unique))


def insert_or_update(
    bind: Bind,
    table: sa.Table | type[SQLModel],
    unique: Sequence[str],
    values: Mapping[str, Any],
) -> Upsert:
    """INSERT ... ON CONFLICT (`unique`) DO UPDATE SET `values`, on SQLite and PostgreSQL."""
    return _dialect_insert(bind, table).on_conflict_do_update(
        index_elements=list(unique), set_=dict(values)
    )


def alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to the latest schema (creating it from empty)."""
    make_engine(url).dispose()  # creates the SQLite folder
    try:
        command.upgrade(alembic_config(url), revision)
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"cannot upgrade {_redact(url)}: {exc.orig}") from exc


def head_revision() -> str | None:
    """The revision the code expects: the head of the bundled migrations."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def require_schema(engine: Engine) -> None:
    """DatabaseError unless the database is reachable and at the bundled head revision.

    Commands call this before their first query, so that a database never initialised or
    left at an older revision is explained (URL, what is wrong, what to run) rather than
    surfacing as "no such table" halfway through a command.
    """
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"cannot reach the database {where}: {exc.orig}") from exc
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaNotReady(
            f"the database {where} has no Diffusion schema yet; "
            "run `diffusion init` (or `diffusion db upgrade`) first"
        )
    raise SchemaNotReady(
        f"the database {where} is at revision {current}, this version of Diffusion expects "
        f"{head}; run `diffusion db upgrade`"
    )


def _redact(url: str) -> str:
    return sa.engine.make_url(normalise_url(url)).render_as_string(hide_password=True)
