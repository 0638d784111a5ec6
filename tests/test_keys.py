"""Signing keys: refused when short, made once and atomically, rotated without breaking links."""

import multiprocessing
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffusion import db, keys, links
from diffusion.cli import cli
from diffusion.config import load_settings
from diffusion.errors import ConfigError
from diffusion.subscriptions import add_subscriber
from diffusion.tokens import make_token, read_token
from tests.people import RULES

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DIFFUSION = str(Path(sys.executable).with_name("diffusion"))
OLD_KEY = "an-older-key-that-signed-links-in-2025"
NEW_KEY = "the-current-key-that-signs-links-today"


@pytest.fixture
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIFFUSION_SECRET_KEY", raising=False)


def _run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DIFFUSION_")}
    environment.update({"DIFFUSION_HOME": str(home), **env})
    return subprocess.run(
        [DIFFUSION, *args], env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("value", ["", "short", "x" * 31])
def test_an_empty_or_short_key_in_the_environment_is_refused_at_load(
    value: str, no_key_in_environment: None
) -> None:
    with pytest.raises(ConfigError, match="DIFFUSION_SECRET_KEY: the signing key is"):
        load_settings(secret_key=value)
    with pytest.raises(ConfigError, match="DIFFUSION_SECRET_KEYS: signing key 2 is"):
        load_settings(secret_keys=f"{NEW_KEY} {value or 'x'}")
    assert load_settings(secret_key="x" * 32).signing_key() == "x" * 32


def test_every_command_that_signs_stops_on_an_empty_key_naming_its_source(
    tmp_path: Path, sqlite_url: str
) -> None:
    for command in (["send", "--dry-run"], ["preview", "--audience", "public"], ["serve"]):
        done = _run(tmp_path, *command, DIFFUSION_SECRET_KEY="")
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "DIFFUSION_SECRET_KEY: the signing key is empty" in lines[0]
    # The same from the key file: a full disk at its first write left it empty.
    key_file = tmp_path / "var" / "secret_key"
    key_file.write_text("\n")
    for command in (["send", "--dry-run"], ["jobs", "run", "send"], ["serve"]):
        done = _run(tmp_path, *command)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{key_file}: the signing key is empty" in lines[0]
    key_file.write_text("too-short-a-key\n")
    done = _run(tmp_path, "preview", "--audience", "public")
    assert done.returncode == 2 and "is 15 bytes long; a key needs at least 32" in done.stderr


def test_init_makes_the_key_file_once_with_mode_0600(
    tmp_path: Path, no_key_in_environment: None
) -> None:
    done = CliRunner().invoke(cli, ["--home", str(tmp_path), "init"])
    assert done.exit_code == 0, done.output
    key_file = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_text()
    assert len(first.strip()) >= 32
    assert CliRunner().invoke(cli, ["--home", str(tmp_path), "init"]).exit_code == 0
    assert key_file.read_text() == first  # a second init keeps the key
    assert [p.name for p in key_file.parent.iterdir() if p.name.startswith(".")] == []


def _create(path: str, start: "multiprocessing.synchronize.Barrier") -> str:
    start.wait()
    return keys.create_key_file(Path(path))[0]


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret_key"
    context = multiprocessing.get_context("spawn")
    for _round in range(3):
        path.unlink(missing_ok=True)
        start = context.Manager().Barrier(8)
        with context.Pool(8) as pool:
            found = pool.starmap(_create, [(str(path), start)] * 8)
        assert len(set(found)) == 1 and path.read_text().split() == [found[0]]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret_key"]  # no temporaries


def test_a_missing_key_file_where_links_were_issued_is_an_error_not_a_new_key(
    tmp_path: Path, sqlite_url: str, no_key_in_environment: None
) -> None:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    engine = db.engine_for(settings)
    with db.session_scope(engine) as session:
        add_subscriber(session, email="ada@example.org", audience="public", now=NOW, rules=RULES)
    engine.dispose()
    base = ["--home", str(tmp_path), "--database-url", sqlite_url]
    # Serving, sending, previewing: refused, naming the file and what to do.
    with pytest.raises(ConfigError, match="secret_key: no signing key file; run `diffusion init`"):
        settings.signing_keys()
    refused = CliRunner().invoke(cli, [*base, "init"])
    assert refused.exit_code == 1 and isinstance(refused.exception, ConfigError)
    assert "has subscribers or editions" in str(refused.exception)
    assert not settings.key_file.exists()
    # On purpose: a new key.
    done = CliRunner().invoke(cli, [*base, "init", "--new-key"])
    assert done.exit_code == 0, done.output
    assert len(load_settings(home=tmp_path).signing_keys()) == 1


def test_links_signed_with_an_older_key_still_verify(
    tmp_path: Path, no_key_in_environment: None
) -> None:
    before = load_settings(home=tmp_path, secret_key=OLD_KEY)
    after = load_settings(home=tmp_path, secret_keys=f"{NEW_KEY} {OLD_KEY}")
    old_link = make_token(before.signing_keys(), "unsubscribe", 7)
    assert read_token(after.signing_keys(), "unsubscribe", old_link) == {"sub": 7}
    confirm = make_token(before.signing_keys(), "confirm", 7, at="2026-11-02T09:00:00")
    assert read_token(after.signing_keys(), "confirm", confirm)["at"] == "2026-11-02T09:00:00"
    assert links.archive_signature_ok(after, 12, links.archive_signature(before, 12))
    # New links are signed with the current key: the old key alone no longer reads them.
    new_link = make_token(after.signing_keys(), "unsubscribe", 7)
    assert read_token(load_settings(secret_key=NEW_KEY).signing_keys(), "unsubscribe", new_link)
    with pytest.raises(ValueError):
        read_token(before.signing_keys(), "unsubscribe", new_link)
    # Once an old key is dropped, its links stop working.
    with pytest.raises(ValueError):
        read_token(load_settings(secret_key=NEW_KEY).signing_keys(), "unsubscribe", old_link)


def test_new_key_rotates_the_key_file_and_keeps_old_links_working(
    tmp_path: Path, sqlite_url: str, no_key_in_environment: None
) -> None:
    base = ["--home", str(tmp_path), "--database-url", sqlite_url]
    assert CliRunner().invoke(cli, [*base, "init"]).exit_code == 0
    before = load_settings(home=tmp_path)
    link = make_token(before.signing_keys(), "preferences", 3)
    assert CliRunner().invoke(cli, [*base, "init", "--new-key"]).exit_code == 0
    after = load_settings(home=tmp_path)
    assert after.signing_keys()[1:] == before.signing_keys()
    assert after.signing_key() != before.signing_key()
    assert read_token(after.signing_keys(), "preferences", link) == {"sub": 3}
    assert stat.S_IMODE(after.key_file.stat().st_mode) == 0o600


def test_the_web_app_does_not_start_with_an_unusable_key(
    tmp_path: Path, sqlite_url: str, no_key_in_environment: None
) -> None:
    from diffusion.web import create_app

    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    with pytest.raises(ConfigError, match="no signing key file"):
        create_app(settings)
    settings.key_file.write_text("short\n")
    with pytest.raises(ConfigError, match="is 5 bytes long"):
        create_app(load_settings(home=tmp_path, database_url=sqlite_url))
