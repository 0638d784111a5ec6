"""One way to read imported rows: the sources, subscribers and directory imports agree.

An unknown column is one warning naming the file, the column and the known columns, and the
rest of the file is imported; a missing column or bytes that are not UTF-8 refuse the file in
one line; a bad row is `FILE:LINE: what is wrong` and the good rows are kept.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from diffusion import db
from diffusion.cli import cli
from diffusion.collect.directories import import_directory
from diffusion.collect.sources import SOURCE_COLUMNS, import_sources
from diffusion.errors import InvalidInput
from diffusion.models import Organisation, Person, Source
from diffusion.rows import ImportReport
from diffusion.subscriptions import import_subscribers
from tests.people import RULES

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SECRET = "test-secret-key-for-signing-links"

Importer = Callable[[Session, Path], ImportReport]


def _sources(session: Session, path: Path) -> ImportReport:
    return import_sources(session, path)


def _subscribers(session: Session, path: Path) -> ImportReport:
    return import_subscribers(session, path, now=NOW, secret=SECRET, rules=RULES)


def _directory(session: Session, path: Path) -> ImportReport:
    return import_directory(session, path, now=NOW)


# Each import: its importer, a header with one column of another tool (`notes`), two good rows
# and a row with one cell too many between them, and how to read back what was stored.
KINDS = {
    "sources": (
        _sources,
        "name,url,kind,notes",
        "ifla,https://www.ifla.org/feed/,ngo_action,from the CRM",
        "unesco,https://en.unesco.org/rss,unesco_news,x,y",
        "dakar,https://dakar.example.org/rss,field_office_activity,",
        ", ".join(SOURCE_COLUMNS.known),
        lambda session: sorted(row.name for row in session.exec(select(Source))),
        ["dakar", "ifla"],
    ),
    "subscribers": (
        _subscribers,
        "email,name,language,audience,key,notes",
        "ana@example.org,Ana,es,public,,met at the forum",
        "bo@example.org,Bo,en,public,,x,y",
        "chen@example.org,Chen,zh,public,,",
        "email, name, language, audience, key, sectors, themes, regions, cadence, status",
        lambda session: sorted(row.email for row in session.exec(select(Person))),
        ["ana@example.org", "chen@example.org"],
    ),
    "directory": (
        _directory,
        "slug,name,notes",
        "ifla,IFLA,partner since 1947",
        "icom,ICOM,x,y",
        "iau,IAU,",
        "slug, name, acronym, sectors, themes, countries, contact_email, website, "
        "partnership_status",
        lambda session: sorted(row.slug for row in session.exec(select(Organisation))),
        ["iau", "ifla"],
    ),
}


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_column_is_one_warning_and_the_rest_is_imported(
    engine: Engine, tmp_path: Path, kind: str
) -> None:
    importer, header, first, shifted, last, known, stored, expected = KINDS[kind]
    path = tmp_path / f"{kind}.csv"
    path.write_text("\n".join([header, first, shifted, last]) + "\n", encoding="utf-8")
    with db.session_scope(engine) as session:
        report = importer(session, path)
    assert report.warnings == [f"{path}:1: unknown column(s) notes ignored; known columns: {known}"]
    assert report.problems == [
        f"{path}:3: 5 cells, but the header names 4 columns; quote a value that holds a comma"
        if kind == "sources"
        else f"{path}:3: {len(header.split(',')) + 1} cells, but the header names "
        f"{len(header.split(','))} columns; quote a value that holds a comma"
    ]
    assert report.created == 2
    with Session(engine) as session:
        assert stored(session) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_column_or_bytes_not_utf8_refuse_the_file_in_one_line(
    sqlite_url: str, tmp_path: Path, kind: str
) -> None:
    importer = KINDS[kind][0]
    engine = db.make_engine(sqlite_url)
    missing = tmp_path / "missing.csv"
    missing.write_text("name\nsomething\n" if kind != "directory" else "slug\nifla\n")
    latin = tmp_path / "latin.csv"
    rows = [KINDS[kind][1], KINDS[kind][3]]
    latin.write_bytes(("\n".join(rows) + "\n").encode() + "Beyoncé,x\n".encode("latin-1"))
    with db.session_scope(engine) as session:
        with pytest.raises(InvalidInput, match=rf"^{missing}:1: missing column\(s\) \w"):
            importer(session, missing)
        with pytest.raises(InvalidInput) as refused:
            importer(session, latin)
    assert str(refused.value) == f"{latin}:3: not UTF-8 text (byte 0xe9); save it as UTF-8"
    engine.dispose()


def test_rows_are_numbered_where_they_start_headers_are_read_loosely_blank_rows_skipped(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "ngos.csv"
    path.write_text(
        " Slug ,NAME,website\n"
        'ifla,"International Federation\nof Library Associations",\n'
        ",,\n"
        "\n"
        'bad slug!,"Bad\nname",\n'
        "'=icom,ICOM,https://icom.museum/\n",
        encoding="utf-8",
    )
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session:
        report = import_directory(session, path, now=NOW)
    assert report.warnings == []
    # A neutralised formula gets its value back before it is checked, as an export's would.
    assert [problem.split(": use")[0] for problem in report.problems] == [
        f"{path}:6: slug 'bad slug!'",
        f"{path}:8: slug '=icom'",
    ]
    with Session(engine) as session:
        rows = {row.slug: row.name for row in session.exec(select(Organisation))}
    engine.dispose()
    assert rows == {"ifla": "International Federation\nof Library Associations"}


def test_the_cli_prints_the_warning_and_exits_0(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "subscribers.csv"
    path.write_text("email,name,language,audience,key,phone\nana@example.org,Ana,es,public,,1\n")
    base = ["--home", str(tmp_path), "--database-url", sqlite_url]
    result = CliRunner().invoke(cli, [*base, "subscribers", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert f"warning: {path}:1: unknown column(s) phone ignored; known columns: email," in (
        result.output
    )
    assert "1 subscriptions created" in result.output
