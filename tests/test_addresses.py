"""One person per address whatever its capitals; audience keys checked by the routing rules."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from diffusion import db, validate
from diffusion.cli import cli
from diffusion.collect.directories import import_directory
from diffusion.config import bundled_path
from diffusion.errors import InvalidInput
from diffusion.models import Person, Subscription
from diffusion.subscriptions import add_subscriber, import_subscribers
from diffusion.subscriptions import find_person as find_subscriber
from tests.people import RULES

SECRET = "test-secret-key-for-signing-links"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
HEADER = "email,name,language,audience,key,sectors,themes,cadence\n"
DIRECTORY = """\
organisations:
  - {slug: ifla, name: IFLA, sectors: [CI]}
field_offices:
  - {code: dhaka, name: UNESCO Dhaka Office, city: Dhaka, country: BD, countries: [BD]}
"""


def _directory(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(DIRECTORY, encoding="utf-8")
    with db.session_scope(engine) as session:
        assert import_directory(session, path, now=NOW).ok


def _csv(tmp_path: Path, name: str, *rows: str) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def _addresses(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(session.exec(select(Person.email)).all())


def test_subscriber_addresses_are_stored_lower_cased() -> None:
    assert validate.subscriber_email(" Helen@IFLA.Example.org ") == "helen@ifla.example.org"
    # Contacts in the directory keep the spelling they were given.
    assert validate.email("Helen@IFLA.Example.org") == "Helen@ifla.example.org"


def test_internationalised_domains_are_kept_in_the_form_mail_servers_take(
    engine: Engine, tmp_path: Path
) -> None:
    assert validate.subscriber_email("Ana@Exämple.org") == "ana@xn--exmple-cua.org"
    with pytest.raises(InvalidInput, match="outside ASCII before the @"):
        validate.subscriber_email("анна@пример.рф")
    _directory(engine, tmp_path)
    path = _csv(
        tmp_path,
        "idn.csv",
        "Ana@Exämple.org,Ana,en,ngo,ifla,,,",
        "анна@пример.рф,Anna,en,ngo,ifla,,,",
    )
    with db.session_scope(engine) as session:
        report = import_subscribers(
            session, path, now=NOW, secret="test-secret-key-for-signing-links", rules=RULES
        )
    assert report.created == 1
    assert len(report.problems) == 1 and f"{path}:3:" in report.problems[0]
    assert _addresses(engine) == ["ana@xn--exmple-cua.org"]
    with Session(engine) as session:  # found by the address as the person types it
        assert find_subscriber(session, "ana@exämple.org") is not None


def test_import_and_add_treat_capitals_as_the_same_person(engine: Engine, tmp_path: Path) -> None:
    _directory(engine, tmp_path)
    first = _csv(
        tmp_path,
        "first.csv",
        "Helen@IFLA.example.org,Helen,en,ngo,ifla,,,",
        "helen@ifla.example.org,Helen again,en,ngo,ifla,,,",
    )
    with db.session_scope(engine) as session:
        report = import_subscribers(
            session, first, now=NOW, secret="test-secret-key-for-signing-links", rules=RULES
        )
    assert report.created == 1
    assert report.problems == [
        f"{first}:3: address helen@ifla.example.org with ngo ifla is already on line 2"
    ]
    again = _csv(tmp_path, "again.csv", "HELEN@ifla.example.org,Helen H.,fr,ngo,IFLA,,,")
    with db.session_scope(engine) as session:
        report = import_subscribers(
            session, again, now=NOW, secret="test-secret-key-for-signing-links", rules=RULES
        )
    assert (report.created, report.updated) == (0, 1)
    with db.session_scope(engine) as session:
        added = add_subscriber(
            session,
            email="helen@Ifla.Example.ORG",
            audience="ngo",
            key="ifla",
            now=NOW,
            rules=RULES,
        )
        assert added.language == "fr"  # adding a subscription keeps the person's language
    assert _addresses(engine) == ["helen@ifla.example.org"]
    with Session(engine) as session:
        found = find_subscriber(session, " HeLeN@ifla.example.org")
        assert found is not None
        held = session.exec(select(Subscription.key).where(Subscription.person_id == found.id))
        assert (found.email, list(held)) == ("helen@ifla.example.org", ["ifla"])
        assert find_subscriber(session, "someone@ifla.example.org") is None


def test_cli_remove_and_preview_find_the_address_in_any_capitals(
    sqlite_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", sqlite_url]
    engine = db.make_engine(sqlite_url)
    _directory(engine, tmp_path)
    added = runner.invoke(
        cli,
        [*base, "subscribers", "add", "Helen@IFLA.example.org"]
        + ["--audience", "ngo", "--key", "IFLA"],
    )
    assert added.exit_code == 0, added.output
    assert _addresses(engine) == ["helen@ifla.example.org"]
    preview = runner.invoke(
        cli, [*base, "preview", "--subscriber", "HELEN@ifla.example.org", "--format", "text"]
    )
    assert preview.exit_code == 0, preview.output
    assert "helen@ifla.example.org" in preview.output  # personalised for her, found by address
    removed = runner.invoke(cli, [*base, "subscribers", "remove", "hElEn@Ifla.example.org"])
    assert removed.exit_code == 0, removed.output
    assert _addresses(engine) == []
    engine.dispose()


def test_key_types_follow_the_editors_routing_rules(sqlite_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", sqlite_url]
    engine = db.make_engine(sqlite_url)
    _directory(engine, tmp_path)
    add = [*base, "subscribers", "add", "chair@example.org", "--audience", "liaison_committee"]
    # Bundled rules: the Liaison Committee takes no key.
    refused = runner.invoke(cli, [*add, "--key", "bd"])
    assert refused.exit_code != 0
    assert "takes no key" in str(refused.exception)
    # An editor's copy of the rules gives it a country key: add and import follow it.
    local = tmp_path / "routing"
    local.mkdir()
    rules = (bundled_path("routing") / "audiences.toml").read_text(encoding="utf-8")
    section = '[audiences.liaison_committee]\nlabel = "Liaison Committee"\nkey = "none"'
    assert section in rules
    (local / "audiences.toml").write_text(
        rules.replace(section, section.replace('key = "none"', 'key = "country"')),
        encoding="utf-8",
    )
    accepted = runner.invoke(cli, [*add, "--key", "bd"])
    assert accepted.exit_code == 0, accepted.output
    rows = _csv(
        tmp_path,
        "committee.csv",
        "member@example.org,M,en,liaison_committee,fr,,,",
        "keyless@example.org,K,en,liaison_committee,,,,",
    )
    imported = runner.invoke(cli, [*base, "subscribers", "import", str(rows)])
    assert imported.exit_code == 1
    assert f"{rows}:3: key: missing; audience liaison_committee needs one" in imported.output
    with Session(engine) as session:
        keys = session.exec(
            select(Person.email, Subscription.key).join(Subscription).order_by(Person.email)
        )
        assert list(keys) == [("chair@example.org", "BD"), ("member@example.org", "FR")]
    engine.dispose()
