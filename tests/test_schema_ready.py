"""Commands refuse a database without the current schema, saying where it is and what to run."""

import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlmodel import SQLModel

from diffusion import db, models  # noqa: F401  (models: the tables in SQLModel.metadata)
from diffusion.cli import main
from diffusion.errors import DatabaseError


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """Run the real entry point (which maps errors to exit codes) under CliRunner's isolation."""
    monkeypatch.setattr(sys, "argv", ["diffusion", *args])
    code = 0
    with CliRunner().isolation() as (_, _, stderr):
        try:
            main()
        except SystemExit as stopped:
            code = int(stopped.code or 0)
    return code, stderr.getvalue().decode()


def test_items_list_on_a_fresh_directory_says_to_run_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "fresh"
    code, err = run_main(monkeypatch, "--home", str(home), "items", "list")
    assert code == 2
    database = home / "var" / "diffusion.db"
    assert (
        err
        == f"error: no database at {database}; run `diffusion init` (or `diffusion demo`) first\n"
    )
    assert not home.exists()  # nothing was created before init

    code, _ = run_main(monkeypatch, "--home", str(home), "init")
    assert code == 0
    code, err = run_main(monkeypatch, "--home", str(home), "items", "list")
    assert (code, "error" in err) == (0, False)


def test_an_older_revision_names_it_and_hides_the_password(database_url: str) -> None:
    url = sa.engine.make_url(db.normalise_url(database_url))
    if url.get_backend_name() == "postgresql":
        url = url.set(password="s3cret-pw")  # the test server trusts local users: any password
    engine = db.make_engine(url.render_as_string(hide_password=False))
    try:
        db.require_schema(engine)  # at head: nothing to say
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000_older'"))
        with pytest.raises(DatabaseError) as raised:
            db.require_schema(engine)
    finally:
        engine.dispose()
    message = str(raised.value)
    assert "revision 0000_older" in message
    assert f"expects {db.head_revision()}" in message
    assert "diffusion db upgrade" in message
    assert "s3cret-pw" not in message
    assert url.render_as_string(hide_password=True) in message


def test_the_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    # A model change without its migration would pass every test run on a fresh database
    # and fail on the databases already out there.
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()
