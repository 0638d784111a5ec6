"""`diffusion preview`: what an audience or a subscriber would receive, in every format."""

import re
import subprocess
import sys
import webbrowser
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from digest_dataset import NOW, store

from diffusion import db, render
from diffusion.cli import cli
from diffusion.config import Settings, load_settings
from diffusion.preview import SAMPLE_EMAIL, build_preview
from diffusion.select.rules import load_rules
from tests.people import RULES, enrol

HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


@pytest.fixture
def base(sqlite_url: str, tmp_path: Path) -> list[str]:
    """CLI arguments pointing at a database holding the digest test dataset."""
    engine = db.make_engine(sqlite_url)
    store(engine)
    with db.session_scope(engine) as session:
        enrol(
            session,
            email="helen@ifla.example.org",
            name="Hélène Bibliothèque",
            language="fr",
            audience="ngo",
            key="ifla",
        )
    engine.dispose()
    return ["--home", str(tmp_path), "--database-url", sqlite_url]


def run(base: list[str], *args: str) -> Result:
    result = CliRunner().invoke(cli, [*base, "preview", *args, "--now", NOW.isoformat()])
    return result


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in message.walk():
        if not part.is_multipart():
            found[part.get_content_type()] = part.get_content()
    return found


def test_text_preview_reads_well_in_a_terminal(base: list[str]) -> None:
    result = run(base, "--audience", "ngo:ifla", "--period", "2026-11")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Dear Ana Sample," in text
    assert "Ifla reading bd" in text and "Reading circles in Dhaka." in text
    assert "https://news.example/ifla-reading-bd" in text
    assert "\nUnsubscribe:\nhttp://127.0.0.1:8080/unsubscribe/" in text
    assert "\nChange your preferences:\nhttp://127.0.0.1:8080/preferences/" in text
    assert "[[diffusion:" not in text
    assert "october-action" not in text  # October is not in the November edition
    assert all(len(line) <= 72 or "://" in line for line in text.splitlines())


def test_french_preview(base: list[str]) -> None:
    result = run(base, "--audience", "ngo:ifla", "--lang", "fr", "--period", "2026-11")
    assert result.exit_code == 0, result.output
    assert "Bonjour Ana Sample," in result.output
    assert "Se désabonner :" in result.output
    assert "Cercles de lecture au Bangladesh" in result.output


def test_default_period_is_the_past_month_and_is_said(base: list[str]) -> None:
    explicit = run(base, "--audience", "sector:ED", "--period", "2026-11")
    december = ["--now", "2026-12-01T09:00:00+00:00"]
    default = CliRunner().invoke(cli, [*base, "preview", "--audience", "sector:ED", *december])
    assert default.exit_code == 0, default.output
    said, _, output = default.output.partition("(what the scheduler sends next).\n")
    assert "No --period given: the past month, 2026-11" in said
    assert "November 2026" in output
    assert _untimed(output) == _untimed(explicit.output)
    # On 28 November, November is not over: the past month is October.
    october = run(base, "--audience", "sector:ED")
    assert "the past month, 2026-10" in october.output


def _untimed(output: str) -> list[str]:
    """The lines of a preview but its signed links, which carry the second they were made."""
    signed = re.compile("/(unsubscribe|preferences)/")
    return [line for line in output.splitlines() if not signed.search(line)]


def test_html_and_mjml_to_files(base: list[str], tmp_path: Path) -> None:
    html_file, mjml_file = tmp_path / "p.html", tmp_path / "p.mjml"
    result = run(
        base, "-a", "member_state:BD", "--lang", "fr", "--format", "html", "-o", str(html_file)
    )
    assert result.exit_code == 0, result.output
    html = html_file.read_text()
    assert '<html lang="fr" dir="ltr"' in html
    assert len(html.encode()) <= render.GMAIL_CLIP_BYTES
    assert "Bonjour Ana Sample," in html and "[[diffusion:" not in html
    result = run(base, "-a", "member_state:BD", "--format", "mjml", "-o", str(mjml_file))
    assert result.exit_code == 0, result.output
    assert mjml_file.read_text().startswith('<mjml lang="en" dir="ltr">')


def test_eml_is_the_complete_message(base: list[str], tmp_path: Path) -> None:
    out = tmp_path / "p.eml"
    result = run(base, "-a", "field_office:dhaka", "--format", "eml", "-o", str(out))
    assert result.exit_code == 0, result.output
    message = parse(out.read_bytes())
    for header in HEADERS:
        assert message[header], header
    assert message["To"].addresses[0].addr_spec == SAMPLE_EMAIL
    assert message.get_content_type() == "multipart/alternative"
    assert set(parts(message)) == {"text/plain", "text/html"}
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_subscriber_preview(base: list[str]) -> None:
    result = CliRunner().invoke(
        cli,
        [*base, "preview", "--subscriber", "Helen@IFLA.example.org", "--format", "eml"]
        + ["--period", "2026-11"],
    )
    assert result.exit_code == 0, result.output
    message = parse(result.stdout_bytes)
    assert message["To"].addresses[0].addr_spec == "helen@ifla.example.org"
    text = parts(message)["text/plain"]
    assert "Bonjour Hélène Bibliothèque," in text  # the subscriber's language and name
    assert "Cercles de lecture au Bangladesh" in text


def _main(base: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    code = "from diffusion.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *base, "preview", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_unknown_audience_names_the_known_ones(base: list[str]) -> None:
    result = _main(base, "--audience", "ministers")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "unknown audience 'ministers'" in message
    for known in ("ngo", "sector", "field_office", "liaison_committee", "public"):
        assert known in message


def test_unknown_key_and_subscriber_are_clear_errors(base: list[str]) -> None:
    result = _main(base, "--audience", "ngo:nobody")
    assert result.returncode == 2 and "ifla" in result.stderr
    result = _main(base, "--subscriber", "ghost@example.org")
    assert result.returncode == 2 and "ghost@example.org" in result.stderr
    result = _main(base)
    assert result.returncode == 2 and "--audience" in result.stderr


def test_open_hands_the_html_to_a_browser(
    base: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {record}\n')
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(browser))
    monkeypatch.setattr(webbrowser, "_tryorder", None)  # read BROWSER again
    monkeypatch.setattr(webbrowser, "_browsers", {})
    out = tmp_path / "open.html"
    result = run(base, "-a", "public", "--format", "html", "-o", str(out), "--open")
    assert result.exit_code == 0, result.output
    assert record.read_text().strip() == out.resolve().as_uri()


# -- on the bundled demo data -----------------------------------------------------------------

DEMO_AUDIENCES = (
    "ngo:ifla",
    "sector:ED",
    "field_office:dhaka",
    "member_state:CO",
    "national_commission:BD",
    "liaison_committee",
    "public",
)
DEMO_NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    load_demo = pytest.importorskip(
        "diffusion.demo", reason="the demo dataset is not there yet", exc_type=ImportError
    ).load_demo
    home = tmp_path_factory.mktemp("demo")
    settings = load_settings(home=home, secret_key="test-secret-key-for-signing-links")
    db.upgrade(settings.database)
    engine = db.engine_for(settings)
    load_demo(engine, settings, now=DEMO_NOW, rules=RULES)
    engine.dispose()
    yield settings


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("audience", DEMO_AUDIENCES)
def test_demo_preview_of_every_audience(demo: Settings, audience: str, language: str) -> None:
    engine = db.engine_for(demo)
    try:
        preview = build_preview(
            engine,
            demo,
            rules=load_rules(demo.routing),
            audience=audience,
            language=language,
            subscriber_email=None,
            period=None,
            now=DEMO_NOW,
        )
    finally:
        engine.dispose()
    assert len(preview.html.encode()) <= render.GMAIL_CLIP_BYTES
    assert f'<html lang="{language}" dir="ltr"' in preview.html
    unsubscribe = "Se désabonner :" if language == "fr" else "Unsubscribe:"
    assert f"\n{unsubscribe}\nhttp" in preview.text
    assert "/preferences/" in preview.text and "://" in preview.text.split(unsubscribe)[0]
    message = parse(preview.eml)
    assert set(parts(message)) == {"text/plain", "text/html"}
    assert message["List-Unsubscribe"] and message["Message-ID"]
