"""The runtime: built once per command and closed once; its rules and keys read once."""

import os
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from diffusion import db, keys
from diffusion.cli import cli
from diffusion.config import load_settings
from diffusion.runtime import Runtime
from diffusion.select.rules import RoutingError
from diffusion.subscriptions import check_subscriber


def _connections(url: str) -> int:
    """Sessions open on the test database, as the server counts them."""
    parsed = sa.engine.make_url(db.normalise_url(url))
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (parsed.database,)
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("command", [["sources", "list"], ["status"], ["outbox", "status"]])
def test_a_command_leaves_no_connection_open(
    database_url: str, tmp_path: Path, command: list[str]
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the server's own count of connections: PostgreSQL")
    baseline = _connections(database_url)
    runner = CliRunner()
    for _ in range(3):
        result = runner.invoke(
            cli, ["--home", str(tmp_path), "--database-url", database_url, *command]
        )
        assert result.exit_code == 0, result.output
    assert _connections(database_url) == baseline


def test_closing_the_runtime_disposes_of_the_engine_it_made(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the server's own count of connections: PostgreSQL")
    baseline = _connections(database_url)
    with Runtime(load_settings(database_url=database_url)) as runtime:
        with runtime.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        assert _connections(database_url) == baseline + 1  # pooled, kept for the next use
    assert _connections(database_url) == baseline
    runtime.close()  # a second close does nothing


def test_the_signing_key_file_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIFFUSION_SECRET_KEY")
    first, second = "a" * 40, "b" * 40
    key_file = tmp_path / "var" / "secret_key"
    key_file.parent.mkdir()
    key_file.write_text(first + "\n")
    os.chmod(key_file, 0o600)
    runtime = Runtime(load_settings(home=tmp_path))
    assert runtime.signing_key == first
    key_file.write_text(second + "\n")  # changed under a running process
    assert runtime.signing_key == first
    assert runtime.keys == (first,)
    assert runtime.settings.replace(smtp_url="smtp://relay.example.org").signing_key() == first
    assert keys.read_key_file(key_file) == (second,)  # a new process reads the new key
    assert Runtime(load_settings(home=tmp_path)).signing_key == second


def test_the_routing_rules_are_read_once(tmp_path: Path) -> None:
    local = tmp_path / "routing"
    local.mkdir()
    bundled = Runtime(load_settings(home=tmp_path)).rules.path
    (local / "audiences.toml").write_bytes(bundled.read_bytes())
    runtime = Runtime(load_settings(home=tmp_path))
    rules = runtime.rules
    assert rules.path == local / "audiences.toml"
    (local / "audiences.toml").write_text("not = [valid")
    assert runtime.rules is rules


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "no routing rules file"), ("audiences = [", "not valid TOML")],
)
def test_a_missing_or_broken_rules_file_is_one_line_naming_it(
    tmp_path: Path, content: str | None, says: str
) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    if content is not None:
        (rules_dir / "audiences.toml").write_text(content)
    env = {"DIFFUSION_ROUTING_DIR": str(rules_dir)}
    runner = CliRunner()

    def refused(*command: str) -> None:
        result = runner.invoke(cli, ["--home", str(tmp_path), *command], env=env)
        assert isinstance(result.exception, RoutingError), result.output
        message = str(result.exception)
        assert message.startswith(f"{rules_dir / 'audiences.toml'}: {says}"), message
        assert "\n" not in message

    refused("demo")
    assert not (tmp_path / "var").exists()  # the demo stopped before making anything
    assert runner.invoke(cli, ["--home", str(tmp_path), "init"], env=env).exit_code == 0
    refused("subscribers", "add", "ana@example.org", "--audience", "public")
    refused("digest", "build")


def test_keys_are_never_checked_against_rules_nobody_chose(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session, pytest.raises(TypeError, match="routing rules"):
        check_subscriber(session, {"email": "ana@example.org", "audience": "public"})
    engine.dispose()
