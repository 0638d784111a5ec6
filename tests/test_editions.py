"""Stored editions and their web version: signed archive links, template checks, stale keys."""

import re
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from digest_dataset import NOW, store
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db, links
from diffusion.cli import cli
from diffusion.config import Settings, load_settings
from diffusion.editions import build_editions
from diffusion.errors import TemplateError
from diffusion.models import Edition
from diffusion.runtime import Runtime
from diffusion.select.rules import load_rules
from diffusion.web import create_app
from tests.people import enrol

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

VIEW_IN_BROWSER = re.compile(
    r'<a href="([^"]+)"[^>]*>'
    r"(?:View this email in your browser|Afficher ce courriel dans votre navigateur)</a>"
)


def _subscribe(engine: Engine, *rows: tuple[str, str, str, str]) -> None:
    with db.session_scope(engine) as session:
        for email, audience, key, language in rows:
            enrol(session, email=email, audience=audience, key=key, language=language)


def _editions(engine: Engine) -> dict[str, Edition]:
    with db.session_scope(engine) as session:
        return {edition.segment: edition for edition in session.exec(select(Edition)).all()}


def _broken(tmp_path: Path, settings: Settings) -> Settings:
    """The bundled templates with a syntax error at line 3 of the Member States' one."""
    folder = tmp_path / "broken-templates"
    folder.mkdir()
    for path in settings.templates.glob("*.j2"):
        (folder / path.name).write_text(path.read_text())
    lines = (folder / "member_state.mjml.j2").read_text().splitlines()
    lines.insert(2, "{% if %}")
    (folder / "member_state.mjml.j2").write_text("\n".join(lines) + "\n")
    return settings.replace(templates_dir=folder)


def test_each_edition_links_to_its_own_signed_web_version(
    engine: Engine, settings: Settings
) -> None:
    store(engine)
    _subscribe(
        engine,
        ("a@example.org", "ngo", "ifla", "en"),
        ("f@example.org", "member_state", "CO", "fr"),
    )
    drafts = settings.replace(require_approval=True)
    for action in ("created", "rebuilt"):  # a rebuilt draft keeps its id, hence its link
        results = build_editions(
            engine, drafts, rules=load_rules(drafts.routing), now=NOW, period="2026-11"
        )
        assert {result.action for result in results} == {action}
        stored = _editions(engine)
        assert len(stored) == 2
        for result in results:
            edition = stored[result.segment]
            assert edition.id == result.edition_id and edition.id is not None
            assert edition.status == "draft"
            url = links.archive_url(settings, edition.id)
            assert f"/archive/{edition.id}?sig=" in url
            found = VIEW_IN_BROWSER.search(edition.html)
            assert found is not None, result.segment
            assert found.group(1) == url
            assert url in edition.text and "/feeds/" not in found.group(1)


def test_the_emailed_link_opens_a_non_public_edition_and_nothing_else_does(
    engine: Engine, settings: Settings
) -> None:
    store(engine)
    _subscribe(
        engine,
        ("f@example.org", "member_state", "CO", "en"),
        ("p@example.org", "public", "", "en"),
    )
    build_editions(engine, settings, rules=load_rules(settings.routing), now=NOW, period="2026-11")
    with db.session_scope(engine) as session:
        for edition in session.exec(select(Edition)).all():
            edition.status = "sent"
            edition.sent_at = NOW
            session.add(edition)
    stored = _editions(engine)
    colombia, public = stored["member_state:CO|en|monthly"], stored["public|en|monthly"]
    assert colombia.id is not None and public.id is not None
    with TestClient(create_app(Runtime(settings, engine=engine))) as client:
        listing = client.get("/archive/")
        assert f'href="/archive/{public.id}"' in listing.text
        assert f"/archive/{colombia.id}" not in listing.text
        assert client.get(f"/archive/{public.id}").status_code == 200
        emailed = VIEW_IN_BROWSER.search(colombia.html)
        assert emailed is not None
        page = client.get(emailed.group(1))
        assert page.status_code == 200 and colombia.subject in page.text
        missing = client.get("/archive/999999")
        for refused in (
            f"/archive/{colombia.id}",
            f"/archive/{colombia.id}?sig=x",
            f"/archive/{colombia.id}?sig=AAA{links.archive_signature(settings, colombia.id)[3:]}",
            f"/archive/{colombia.id}?sig={links.archive_signature(settings, public.id)}",
        ):
            answer = client.get(refused)
            assert answer.status_code == 404 and answer.text == missing.text, refused


def test_a_broken_template_stops_the_build_and_the_web_service(
    tmp_path: Path, engine: Engine, settings: Settings
) -> None:
    store(engine)
    _subscribe(engine, ("a@example.org", "ngo", "ifla", "en"))
    broken = _broken(tmp_path, settings)
    with pytest.raises(TemplateError, match=r"member_state\.mjml\.j2, line 3"):
        build_editions(engine, broken, rules=load_rules(broken.routing), now=NOW, period="2026-11")
    assert _editions(engine) == {}  # nothing built, not even the NGO's edition
    with pytest.raises(TemplateError, match=r"member_state\.mjml\.j2, line 3"):
        create_app(Runtime(broken, engine=engine))


def test_a_segment_whose_key_is_gone_is_reported(engine: Engine, settings: Settings) -> None:
    store(engine)
    _subscribe(
        engine,
        ("a@example.org", "ngo", "ifla", "en"),
        ("x@example.org", "ngo", "closed-ngo", "en"),
        ("y@example.org", "ngo", "closed-ngo", "en"),
    )
    results = {
        r.segment: r
        for r in build_editions(
            engine, settings, rules=load_rules(settings.routing), now=NOW, period="2026-11"
        )
    }
    assert results["ngo:ifla|en|monthly"].warning is None
    warning = results["ngo:closed-ngo|en|monthly"].warning
    assert warning is not None
    assert "closed-ngo" in warning and "2 active subscriber(s)" in warning


def test_cli_digest_build_shows_the_warnings(tmp_path: Path, sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    store(engine)
    _subscribe(engine, ("x@example.org", "ngo", "closed-ngo", "en"))
    engine.dispose()
    result = CliRunner().invoke(
        cli,
        ["--home", str(tmp_path), "--database-url", sqlite_url, "digest", "build"]
        + ["--period", "2026-11", "--now", NOW.isoformat()],
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "Warning" in flat and "ngo:closed-ngo|en|monthly" in flat and "closed-ngo" in flat


def test_confirm_url_and_archive_url_are_signed_with_the_key(tmp_path: Path) -> None:
    ours = load_settings(home=tmp_path, secret_key="one-for-signing-links-0123456789")
    theirs = load_settings(home=tmp_path, secret_key="two-for-signing-links-0123456789")
    assert links.archive_url(ours, 7) != links.archive_url(theirs, 7)
    signature = links.archive_signature(ours, 7)
    assert links.archive_signature_ok(ours, 7, signature)
    assert not links.archive_signature_ok(ours, 8, signature)
    assert not links.archive_signature_ok(theirs, 7, signature)
    assert not links.archive_signature_ok(ours, 7, None)
