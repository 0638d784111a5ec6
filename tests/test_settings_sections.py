"""Settings in sections: [smtp] in diffusion.toml, and the flat names of before kept as aliases."""

from pathlib import Path

import pytest

from diffusion.config import load_settings
from diffusion.errors import ConfigError


def test_a_sectioned_table_in_the_file_sets_its_keys(tmp_path: Path) -> None:
    (tmp_path / "diffusion.toml").write_text(
        '[smtp]\nurl = "smtps://mail.example.org:465"\nconnections = 2\n\n'
        "[web]\nport = 9090\n\n[send]\nlease_seconds = 120\n"
    )
    settings = load_settings(home=tmp_path)
    assert settings.smtp.url == "smtps://mail.example.org:465"
    assert settings.smtp.connections == 2
    assert settings.web.port == 9090
    assert settings.send.lease_seconds == 120
    assert settings.smtp.timeout == 30.0  # what the table leaves out keeps its default


def test_the_flat_names_of_the_file_and_the_environment_are_aliases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "diffusion.toml").write_text(
        'smtp_url = "smtp://file.example.org:25"\nsend_lease_seconds = 90\nsoft_bounce_limit = 5\n'
    )
    settings = load_settings(home=tmp_path)
    assert settings.smtp.url == "smtp://file.example.org:25"
    assert (settings.send.lease_seconds, settings.bounces.soft_limit) == (90, 5)
    # The environment overrides the file whichever name either uses.
    monkeypatch.setenv("DIFFUSION_SMTP_URL", "smtp://flat.example.org:25")
    monkeypatch.setenv("DIFFUSION_SCHEDULE_COLLECT_MINUTES", "15")
    settings = load_settings(home=tmp_path)
    assert settings.smtp.url == "smtp://flat.example.org:25"
    assert settings.schedule.collect_minutes == 15
    monkeypatch.setenv("DIFFUSION_SEND__LEASE_SECONDS", "30")
    assert load_settings(home=tmp_path).send.lease_seconds == 30
    # And a flag overrides both.
    assert load_settings(home=tmp_path, smtp_url="smtp://flag.example.org").smtp.url == (
        "smtp://flag.example.org"
    )


def test_a_bad_value_in_a_section_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "diffusion.toml"
    config.write_text('[smtp]\nurl = "smtp://mail.example.org"\ntimeout = -1\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(home=tmp_path)
    assert str(caught.value) == f"{config}: smtp.timeout: Input should be greater than 0"
    config.write_text("[schedule]\nmonthly = 'first monday'\n")
    with pytest.raises(ConfigError, match=rf"^{config}: schedule\.monthly: 'first monday' is not"):
        load_settings(home=tmp_path)
    config.write_text('[smtp]\nadress = "smtp://mail.example.org"\n')
    with pytest.raises(ConfigError, match=rf"^{config}: smtp\.adress: Extra inputs"):
        load_settings(home=tmp_path)


def test_an_error_names_the_key_as_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "diffusion.toml"
    config.write_text("web_port = 99999\n")
    with pytest.raises(ConfigError, match=rf"^{config}: web_port: Input should be less"):
        load_settings(home=tmp_path)
    config.write_text("")
    monkeypatch.setenv("DIFFUSION_SMTP_TIMEOUT", "soon")
    with pytest.raises(
        ConfigError, match=r"^environment variable DIFFUSION_SMTP_TIMEOUT: smtp_timeout: "
    ):
        load_settings(home=tmp_path)


def test_a_setting_given_twice_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "diffusion.toml"
    config.write_text('smtp_url = "smtp://a.example.org"\n[smtp]\nurl = "smtp://b.example.org"\n')
    with pytest.raises(ConfigError, match=rf"^{config}: smtp_url and \[smtp\] url are the same"):
        load_settings(home=tmp_path)


def test_secrets_in_a_section_of_the_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "diffusion.toml").write_text('[bounces]\nimap_password = "hunter2"\n')
    with pytest.raises(ConfigError, match="set DIFFUSION_BOUNCE_IMAP_PASSWORD in the environment"):
        load_settings(home=tmp_path)


def test_a_copy_with_changes_takes_flat_or_sectioned_names(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    changed = settings.replace(smtp_url="smtp://relay.example.org", web={"port": 81})
    assert (changed.smtp.url, changed.web.port) == ("smtp://relay.example.org", 81)
    assert (settings.smtp.url, settings.web.port) == (None, 8080)
