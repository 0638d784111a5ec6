"""The foundation: settings precedence, migrations on both databases, timestamps in UTC."""

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlmodel import select

from diffusion import db
from diffusion.config import load_settings
from diffusion.errors import ConfigError, InvalidToken
from diffusion.models import Item
from diffusion.personalise import fill, placeholder
from diffusion.tokens import make_token, read_token


def test_settings_precedence_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "diffusion.toml").write_text('timezone = "UTC"\ndigest_max_items = 10\n')
    assert load_settings(home=tmp_path).digest_max_items == 10
    monkeypatch.setenv("DIFFUSION_DIGEST_MAX_ITEMS", "20")
    assert load_settings(home=tmp_path).digest_max_items == 20
    assert load_settings(home=tmp_path, digest_max_items=30).digest_max_items == 30
    assert load_settings(home=tmp_path).timezone == "UTC"


def test_default_state_lives_under_the_data_directory(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert settings.database == f"sqlite:///{tmp_path / 'var' / 'diffusion.db'}"
    assert settings.outbox_dir == tmp_path / "var" / "outbox"
    assert settings.feeds_dir == tmp_path / "var" / "feeds"


def test_secrets_in_the_config_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "diffusion.toml").write_text('smtp_password = "hunter2"\n')
    with pytest.raises(ConfigError, match="DIFFUSION_SMTP_PASSWORD"):
        load_settings(home=tmp_path)


def test_contradictions_fail_at_load_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="default_language"):
        load_settings(home=tmp_path, languages=["en"], default_language="fr")
    with pytest.raises(ConfigError, match="smtp_url"):
        load_settings(home=tmp_path, smtp_url="http://mail.example.org")


def test_migrations_upgrade_and_timestamps_come_back_in_utc(database_url: str) -> None:
    db.upgrade(database_url)  # a second upgrade is a no-op
    engine = db.make_engine(database_url)
    published = datetime(2026, 11, 2, 10, 30, tzinfo=timezone(timedelta(hours=6)))
    with db.session_scope(engine) as session:
        session.add(
            Item(
                kind="ngo_action",
                guid="urn:test:1",
                title="Literacy circles in Dhaka",
                published_at=published,
                content_hash="0" * 64,
                tags={"countries": ["BD"]},
            )
        )
    with db.session_scope(engine) as session:
        item = session.exec(select(Item)).one()
        assert item.published_at == published
        assert item.published_at.tzinfo == UTC
        assert item.tags == {"countries": ["BD"]}
    engine.dispose()


def test_tokens_are_bound_to_their_purpose_and_refuse_tampering() -> None:
    token = make_token("s3cret", "unsubscribe", 42)
    assert read_token("s3cret", "unsubscribe", token)["sub"] == 42
    with pytest.raises(InvalidToken):
        read_token("s3cret", "confirm", token)
    with pytest.raises(InvalidToken):
        read_token("s3cret", "unsubscribe", token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    with pytest.raises(InvalidToken):
        read_token("other", "unsubscribe", token)
    with pytest.raises(InvalidToken):  # another subscriber's id under this signature
        read_token("s3cret", "unsubscribe", "43" + token.removeprefix("42"))


def test_tokens_with_claims_and_tokens_of_the_earlier_form_are_read() -> None:
    confirm = make_token("s3cret", "confirm", 7, at="2026-11-01T09:00:00+00:00")
    assert read_token("s3cret", "confirm", confirm) == {"sub": 7, "at": "2026-11-01T09:00:00+00:00"}
    # Links in newsletters sent before tokens were compact: a signed JSON object.
    earlier = URLSafeTimedSerializer("s3cret", salt="diffusion.unsubscribe").dumps({"sub": 42})
    assert read_token("s3cret", "unsubscribe", earlier) == {"sub": 42}


def test_expired_tokens_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    an_hour_ago = int(time.time()) - 3600
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda _self: an_hour_ago)
        token = make_token("s3cret", "preferences", 42)
    assert read_token("s3cret", "preferences", token, max_age_seconds=7200)["sub"] == 42
    with pytest.raises(InvalidToken, match="expired"):
        read_token("s3cret", "preferences", token, max_age_seconds=60)


def test_placeholders_are_filled_per_recipient() -> None:
    template = f'<p>{placeholder("greeting")}</p><a href="{placeholder("unsubscribe_url")}">x</a>'
    assert fill(template, {"greeting": "Dear Ana,", "unsubscribe_url": "https://u/1"}) == (
        '<p>Dear Ana,</p><a href="https://u/1">x</a>'
    )
