"""Shared fixtures: a fresh database on SQLite and on PostgreSQL, and settings that point at it."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.config import Settings, load_settings

POSTGRES_ADMIN_URL = os.environ.get(
    "DIFFUSION_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# The signing key of every test that sets none (a key is refused below 32 bytes); tests of the
# key file unset it.
TEST_KEY = "test-key-of-the-environment-32-bytes-long"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regenerate-golden",
        action="store_true",
        help="rewrite the golden files under tests/golden from what the code produces now",
    )


def pytest_configure(config: pytest.Config) -> None:
    from tests import goldens

    if config.getoption("--regenerate-golden"):
        goldens.REGENERATE = True


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own DIFFUSION_* settings or diffusion.toml."""
    for name in list(os.environ):
        if name.startswith("DIFFUSION_") and name != "DIFFUSION_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DIFFUSION_SECRET_KEY", TEST_KEY)
    monkeypatch.chdir(tmp_path)


def _postgres_database() -> Iterator[str]:
    """Create a throw-away database on the test server, yield its URL, drop it."""
    admin = sa.engine.make_url(db.normalise_url(POSTGRES_ADMIN_URL))
    name = f"diffusion_test_{uuid.uuid4().hex[:12]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if "DIFFUSION_TEST_DATABASE_URL" in os.environ:
            raise  # asked for explicitly: an unreachable server is a failure, not a skip
        pytest.skip(f"no PostgreSQL server reachable at {admin.host}:{admin.port} ({exc})")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database upgraded to the latest schema: SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'diffusion.db'}"
        db.upgrade(url)
        yield url
    else:
        for url in _postgres_database():
            db.upgrade(url)
            yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database only, for tests whose subject is not the database."""
    url = f"sqlite:///{tmp_path / 'var' / 'diffusion.db'}"
    db.upgrade(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings with the data directory in tmp_path and the parametrised database."""
    return load_settings(
        home=tmp_path, database_url=database_url, secret_key="test-secret-key-for-signing-links"
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = db.engine_for(settings)
    yield engine
    engine.dispose()
