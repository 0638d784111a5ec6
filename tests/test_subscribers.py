"""Subscribers: CSV import with FILE:LINE problems, upserts by address and audience, CLI."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from diffusion import db, subscriptions
from diffusion.cli import cli, main
from diffusion.collect.directories import import_directory
from diffusion.errors import InvalidInput
from diffusion.models import Edition, OutboxMessage, Person, Subscription
from diffusion.subscriptions import add_subscriber, import_subscribers
from tests.people import RULES

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SECRET = "test-secret-key-for-signing-links"
HEADER = "email,name,language,audience,key,sectors,themes,cadence\n"
DIRECTORY = """\
organisations:
  - {slug: ifla, name: IFLA, sectors: [CI]}
field_offices:
  - {code: dhaka, name: UNESCO Dhaka Office, city: Dhaka, country: BD, countries: [BD]}
"""


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "directory.yaml"
    path.write_text(DIRECTORY)
    return path


def _load_directory(engine: Engine, path: Path) -> None:
    with db.session_scope(engine) as session:
        assert import_directory(session, path, now=NOW).ok


def _csv(tmp_path: Path, *rows: str, name: str = "subscribers.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def test_one_bad_row_is_reported_by_line_and_the_others_imported(
    engine: Engine, tmp_path: Path, directory: Path
) -> None:
    _load_directory(engine, directory)
    path = _csv(
        tmp_path,
        "librarian@ifla.example.org,Helen,en,ngo,ifla,,,",
        "broken-address,Nobody,en,public,,,,",
        "desk@unesco.example.org,Desk,fr,sector,ED,,,weekly",
    )
    with db.session_scope(engine) as session:
        report = import_subscribers(session, path, now=NOW, secret=SECRET, rules=RULES)
    assert report.created == 2
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{path}:3: address 'broken-address': ")
    with Session(engine) as session:
        rows = session.exec(
            select(Person, Subscription).join(Subscription).order_by(Person.email)
        ).all()
    assert [(p.email, s.audience, s.key, s.cadence) for p, s in rows] == [
        ("desk@unesco.example.org", "sector", "ED", "weekly"),
        ("librarian@ifla.example.org", "ngo", "ifla", "monthly"),
    ]
    assert all(p.status == s.status == "active" and p.consent_at == NOW for p, s in rows)


def test_a_bad_row_after_a_cell_spanning_lines_is_named_by_its_first_line(
    engine: Engine, tmp_path: Path, directory: Path
) -> None:
    _load_directory(engine, directory)
    path = _csv(
        tmp_path,
        'librarian@ifla.example.org,"Helen\nHead of Literacy\nIFLA",en,ngo,ifla,,,',
        'broken-address,"Nobody\nat all",en,public,,,,',
        "reader@example.org,Reader,en,public,,,,",
    )
    with db.session_scope(engine) as session:
        report = import_subscribers(session, path, now=NOW, secret=SECRET, rules=RULES)
    # The header is line 1, Helen lines 2-4, the bad row lines 5-6.
    assert report.created == 2
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{path}:5: address 'broken-address': ")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("a@example.org\u200b,A,en,public,,,,", "address"),
        ("a@example.org,A,en,member_state,XX,,,", "country 'XX'"),
        ("a@example.org,A,en,sector,EDU,,,", "Sector 'EDU'"),
        ("a@example.org,A,en,public,,ED;XY,,", "Sector 'XY'"),
        ("a@example.org,A,en,donors,,,,", "audience 'donors'"),
        ("a@example.org,A,en,ngo,unesco-friends,,,", "no organisation with this slug"),
        ("a@example.org,A,en,field_office,atlantis,,,", "no Field Office with this code"),
        ("a@example.org,A,english,public,,,,", "language 'english'"),
        ("a@example.org,A,en,ngo,,,,", "key: missing; audience ngo needs one"),
        ("a@example.org,A,en,public,ifla,,,", "audience public takes no key"),
        ("a@example.org,A,en,public,,,,daily", "cadence 'daily'"),
    ],
)
def test_each_kind_of_bad_value_is_named(
    sqlite_url: str, tmp_path: Path, directory: Path, row: str, reason: str
) -> None:
    engine = db.make_engine(sqlite_url)
    _load_directory(engine, directory)
    path = _csv(tmp_path, row)
    with db.session_scope(engine) as session:
        report = import_subscribers(session, path, now=NOW, secret=SECRET, rules=RULES)
    assert report.created == 0
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{path}:2: ")
    assert reason in report.problems[0]
    engine.dispose()


def test_reimport_updates_in_place_by_normalised_address_and_audience(
    engine: Engine, tmp_path: Path, directory: Path
) -> None:
    _load_directory(engine, directory)
    first = _csv(tmp_path, "helen@ifla.example.org,Helen,en,ngo,ifla,,,")
    with db.session_scope(engine) as session:
        import_subscribers(session, first, now=NOW, secret=SECRET, rules=RULES)
    second = _csv(
        tmp_path,
        "helen@IFLA.Example.org,Helen Okafor,fr,ngo,ifla,CI,libraries,weekly",
        "helen@ifla.example.org,,fr,public,,,,",
        "HELEN@ifla.example.org,Duplicate,en,ngo,IFLA,,,",
        name="again.csv",
    )
    with db.session_scope(engine) as session:
        report = import_subscribers(session, second, now=LATER, secret=SECRET, rules=RULES)
    # The second line adds a subscription to the same person; the third repeats the first.
    assert (report.created, report.updated) == (0, 2)
    assert report.problems == [
        f"{second}:4: address helen@ifla.example.org with ngo ifla is already on line 2"
    ]
    with Session(engine) as session:
        (helen,) = session.exec(select(Person)).all()
        ngo, public = session.exec(select(Subscription).order_by(Subscription.id)).all()
    assert (helen.name, helen.language, helen.consent_at) == ("Helen Okafor", "fr", NOW)
    assert (ngo.audience, ngo.sectors, ngo.themes, ngo.cadence) == (
        "ngo",
        ["CI"],
        ["libraries"],
        "weekly",
    )
    assert (public.audience, public.person_id, public.status) == ("public", helen.id, "active")


def test_a_file_without_the_required_columns_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("email,name\na@example.org,A\n")
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session, pytest.raises(InvalidInput, match=r":1: missing"):
        import_subscribers(session, path, now=NOW, secret=SECRET, rules=RULES)
    engine.dispose()


def test_add_then_erase_removes_the_person_and_their_outbox(
    engine: Engine, directory: Path
) -> None:
    _load_directory(engine, directory)
    with db.session_scope(engine) as session:
        subscriber = add_subscriber(
            session,
            email="Farhana@Dhaka.example.org",
            name="Farhana",
            language="en",
            audience="field_office",
            key="DHAKA",
            sectors=["ed"],
            themes=[],
            cadence="monthly",
            now=NOW,
            rules=RULES,
        )
        other = add_subscriber(
            session, email="x@example.org", audience="public", now=NOW, rules=RULES
        )
        edition = Edition(
            segment="field_office:dhaka|en|monthly", audience="field_office", period="2026-11"
        )
        session.add(edition)
        session.flush()
        assert edition.id and subscriber.id and other.id
        session.add(OutboxMessage(edition_id=edition.id, subscriber_id=subscriber.id))
        session.add(OutboxMessage(edition_id=edition.id, subscriber_id=other.id, state="sent"))
    with Session(engine) as session:
        (held,) = session.exec(select(Subscription).where(Subscription.person_id == subscriber.id))
    assert (subscriber.email, held.key, held.sectors) == (
        "farhana@dhaka.example.org",  # one person per address: stored lower-cased
        "dhaka",
        ["ED"],
    )
    with db.session_scope(engine) as session:
        found = subscriptions.find_person(session, "Farhana@DHAKA.example.org")
        assert found is not None
        subscriptions.erase(session, found, secret=SECRET, now=LATER)
        assert subscriptions.find_person(session, "farhana@dhaka.example.org") is None
    with Session(engine) as session:
        assert session.exec(select(Person.email)).all() == ["x@example.org"]
        assert [m.subscriber_id for m in session.exec(select(OutboxMessage))] == [other.id]
        assert [s.person_id for s in session.exec(select(Subscription))] == [other.id]


def test_cli_import_list_add_remove(sqlite_url: str, tmp_path: Path, directory: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", sqlite_url]
    assert runner.invoke(cli, [*base, "directory", "import", str(directory)]).exit_code == 0
    path = _csv(
        tmp_path,
        "helen@ifla.example.org,Helen,en,ngo,ifla,,,",
        "someone@example.org,Someone,fr,public,,,,",
        "nobody@example.org,Nobody,en,member_state,ZZ,,,",
    )
    result = runner.invoke(cli, [*base, "subscribers", "import", str(path)])
    assert result.exit_code == 1
    assert "2 subscriptions created" in result.output
    assert f"{path}:4: country 'ZZ'" in result.output
    result = runner.invoke(
        cli,
        [*base, "subscribers", "add", "desk@unesco.example.org", "--audience", "sector"]
        + ["--key", "SC", "--sector", "SC", "--theme", "open science", "--cadence", "weekly"],
    )
    assert result.exit_code == 0, result.output
    assert "sector:SC" in result.output
    result = runner.invoke(cli, [*base, "subscribers", "list", "--format", "json"])
    listed = {row["email"]: row for row in json.loads(result.output)}
    assert set(listed) == {
        "helen@ifla.example.org",
        "someone@example.org",
        "desk@unesco.example.org",
    }
    assert listed["desk@unesco.example.org"]["themes"] == ["open-science"]
    result = runner.invoke(
        cli, [*base, "subscribers", "list", "--audience", "ngo", "--format", "csv"]
    )
    assert result.output.splitlines()[1].startswith("helen@ifla.example.org,Helen,en,ngo,ifla")
    assert len(result.output.splitlines()) == 2
    result = runner.invoke(cli, [*base, "subscribers", "list", "--format", "table"])
    assert "3 subscriptions" in result.output
    result = runner.invoke(cli, [*base, "subscribers", "remove", "someone@example.org"])
    assert result.exit_code == 0 and "Erased someone@example.org" in result.output
    result = runner.invoke(cli, [*base, "subscribers", "remove", "--all"], input="n\n")
    assert result.exit_code == 1  # aborted: nothing removed
    result = runner.invoke(cli, [*base, "subscribers", "list", "--format", "json"])
    assert len(json.loads(result.output)) == 2
    result = runner.invoke(cli, [*base, "subscribers", "remove", "--all", "--yes"])
    assert result.exit_code == 0 and "Removed 2 subscribers" in result.output
    result = runner.invoke(cli, [*base, "subscribers", "list", "--format", "json"])
    assert json.loads(result.output) == []


def test_removing_an_unknown_address_is_an_error_with_exit_code_2(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["diffusion", "--home", str(tmp_path), "--database-url", sqlite_url]
    monkeypatch.setattr("sys.argv", [*argv, "subscribers", "remove", "ghost@example.org"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "no subscriber with the address ghost@example.org" in capsys.readouterr().err


def test_a_csv_export_imports_again_unchanged(
    sqlite_url: str, tmp_path: Path, directory: Path
) -> None:
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", sqlite_url]
    assert runner.invoke(cli, [*base, "directory", "import", str(directory)]).exit_code == 0
    path = tmp_path / "with-regions.csv"
    path.write_text(
        "email,name,language,audience,key,sectors,themes,regions,cadence\n"
        "helen@ifla.example.org,Helen,fr,ngo,ifla,CI;ED,libraries,africa;arab-states,weekly\n",
        encoding="utf-8",
    )
    assert runner.invoke(cli, [*base, "subscribers", "import", str(path)]).exit_code == 0
    exported = runner.invoke(cli, [*base, "subscribers", "list", "--format", "csv"]).output
    assert "africa;arab-states" in exported
    (tmp_path / "export.csv").write_text(
        exported.replace(",active\n", "\n").replace(",cadence,status\n", ",cadence\n"),
        encoding="utf-8",
    )
    again = runner.invoke(cli, [*base, "subscribers", "import", str(tmp_path / "export.csv")])
    assert again.exit_code == 0, again.output
    assert "0 subscriptions created, 0 updated, 1 unchanged" in again.output
