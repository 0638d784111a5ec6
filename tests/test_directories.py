"""Directories from CSV and YAML: validation with file and line, upserts, export, CLI."""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from diffusion import db, validate
from diffusion.cli import cli
from diffusion.collect.directories import export_directory, import_directory
from diffusion.errors import InvalidInput
from diffusion.models import FieldOffice, FocalPoint, Forum, Organisation, Sector

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)

DIRECTORY_YAML = """\
organisations:
  - slug: ifla
    name: International Federation of Library Associations and Institutions
    acronym: IFLA
    sectors: [CI, CLT]
    themes: [Access to information, libraries]
    countries: [nl, BD]
    contact_email: Partnerships@IFLA.Example.ORG
    website: https://www.ifla.org
  - slug: bad-country
    name: Nowhere Network
    countries: [XX]
  - slug: icsc
    name: International Civil Society Centre
    sectors: "SHS; SC"
field_offices:
  - code: dhaka
    name: UNESCO Dhaka Office
    city: Dhaka
    country: BD
    countries: [BD]
  - code: nowhere
    name: Bad office
    city: Atlantis
    country: BD
    email: not-an-address
focal_points:
  - {sector: ED, name: Amina Rahman, email: ngo-focal.ed@unesco.example.org, role: Focal point}
  - {sector: XY, name: Nobody, email: nobody@unesco.example.org}
forums:
  - slug: iclc-2019
    name: 4th International Conference on Learning Cities
    starts_on: 2019-10-01
    ends_on: 2019-10-03
    city: Medellín
    countries: [CO]
  - slug: backwards
    name: Ends before it starts
    starts_on: 2019-10-03
    ends_on: 2019-10-01
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_validators_normalise_or_explain() -> None:
    assert validate.email(" Someone@Example.ORG ") == "Someone@example.org"
    with pytest.raises(InvalidInput, match="line break"):
        validate.email("a@example.org\r\nBcc: victim@example.org")
    with pytest.raises(InvalidInput, match="address"):
        validate.email("no-at-sign.example.org")
    assert validate.country("bd") == "BD"
    with pytest.raises(InvalidInput, match="ISO 3166-1"):
        validate.country("UK")
    assert validate.sector("shs") == "SHS"
    with pytest.raises(InvalidInput, match="ED, SC, SHS, CLT, CI"):
        validate.sector("EDU")
    assert [validate.language(code) for code in ("en", "FR", "es", "ar", "ru", "zh")] == [
        "en",
        "fr",
        "es",
        "ar",
        "ru",
        "zh",
    ]
    with pytest.raises(InvalidInput, match="ISO 639-1"):
        validate.language("english")
    assert validate.split_list("ED;SC") == ["ED", "SC"]
    assert validate.split_list("ED, SC ,") == ["ED", "SC"]
    assert validate.split_list(None) == []
    assert validate.theme("Lifelong learning") == "lifelong-learning"
    assert validate.cadence("Weekly") == "weekly"
    assert validate.kind("ngo_action") == "ngo_action"
    assert validate.audience("member_state") == "member_state"
    with pytest.raises(InvalidInput, match="audience"):
        validate.audience("donors")
    with pytest.raises(InvalidInput, match="slug"):
        validate.slug("Not a slug")


def test_yaml_directory_reports_bad_entries_by_line_and_imports_the_rest(
    engine: Engine, tmp_path: Path
) -> None:
    path = _write(tmp_path, "directory.yaml", DIRECTORY_YAML)
    with db.session_scope(engine) as session:
        report = import_directory(session, path, now=NOW)
    assert len(report.problems) == 4
    assert report.problems[0] == (
        f"{path}:10: country 'XX': not an ISO 3166-1 alpha-2 code (e.g. BD, FR, CO)"
    )
    assert report.problems[1].startswith(f"{path}:22: address 'not-an-address': ")
    assert "@-sign" in report.problems[1]
    assert report.problems[2:] == [
        f"{path}:29: Sector 'XY': unknown; expected one of ED, SC, SHS, CLT, CI",
        f"{path}:37: ends_on 2019-10-01 is before starts_on 2019-10-03",
    ]
    assert report.created == 5
    with Session(engine) as session:
        ifla = session.exec(select(Organisation).where(Organisation.slug == "ifla")).one()
        assert ifla.contact_email == "Partnerships@ifla.example.org"
        assert ifla.countries == ["NL", "BD"]
        assert ifla.themes == ["access-to-information", "libraries"]
        icsc = session.exec(select(Organisation).where(Organisation.slug == "icsc")).one()
        assert icsc.sectors == ["SHS", "SC"]
        assert session.get(FieldOffice, "dhaka") is not None
        assert session.get(FieldOffice, "nowhere") is None
        forum = session.exec(select(Forum)).one()
        assert (forum.starts_on, forum.city) == (date(2019, 10, 1), "Medellín")
        assert session.exec(select(FocalPoint.sector_code)).all() == ["ED"]
        assert sorted(session.exec(select(Sector.code)).all()) == ["CI", "CLT", "ED", "SC", "SHS"]


def test_reimport_updates_in_place_and_never_duplicates(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path, "directory.yaml", DIRECTORY_YAML)
    with db.session_scope(engine) as session:
        import_directory(session, path, now=NOW)
    changed = DIRECTORY_YAML.replace("name: UNESCO Dhaka Office", "name: UNESCO Office in Dhaka")
    _write(tmp_path, "directory.yaml", changed)
    with db.session_scope(engine) as session:
        report = import_directory(session, path, now=LATER)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 4)
    with Session(engine) as session:
        offices = session.exec(select(FieldOffice)).all()
        assert [(o.code, o.name, o.updated_at) for o in offices] == [
            ("dhaka", "UNESCO Office in Dhaka", LATER)
        ]
        assert len(session.exec(select(Organisation)).all()) == 2
        assert len(session.exec(select(Sector)).all()) == 5


def test_csv_directories_are_told_apart_by_header_and_report_lines(
    engine: Engine, tmp_path: Path
) -> None:
    organisations = _write(
        tmp_path,
        "ngos.csv",
        "slug,name,sectors,countries,contact_email,partnership_status\n"
        "ifla,IFLA,CI;CLT,NL;BD,info@ifla.example.org,associate\n"
        "Bad Slug,Someone,ED,FR,,consultative\n"
        "wosm,World Scouting,ED;XYZ,CH,,consultative\n"
        "ei,Education International,ED,BE,,friend\n"
        "ifla,IFLA again,CI,NL,,associate\n",
    )
    offices = _write(
        tmp_path,
        "offices.csv",
        "code,name,city,country,countries\ndhaka,UNESCO Dhaka Office,Dhaka,BD,BD\n",
    )
    focal = _write(
        tmp_path, "focal.csv", "sector,name,email,role\nCI,Priya,p@unesco.example.org,\n"
    )
    with db.session_scope(engine) as session:
        report = import_directory(session, organisations, now=NOW)
        assert import_directory(session, offices, now=NOW).created == 1
        assert import_directory(session, focal, now=NOW).created == 1
    assert report.created == 1
    assert [problem.split(": ", 1)[0] for problem in report.problems] == [
        f"{organisations}:3",
        f"{organisations}:4",
        f"{organisations}:5",
        f"{organisations}:6",
    ]
    assert "Sector 'XYZ'" in report.problems[1]
    assert "partnership_status 'friend'" in report.problems[2]
    assert "duplicate of line 2" in report.problems[3]
    unknown = _write(tmp_path, "mystery.csv", "who,what\nx,y\n")
    with db.session_scope(engine) as session, pytest.raises(InvalidInput, match="--kind"):
        import_directory(session, unknown, now=NOW)


def test_export_reads_back_unchanged(engine: Engine, tmp_path: Path) -> None:
    with db.session_scope(engine) as session:
        import_directory(session, _write(tmp_path, "d.yaml", DIRECTORY_YAML), now=NOW)
        as_yaml = export_directory(session, "yaml")
        as_csv = export_directory(session, "csv")
    assert set(yaml.safe_load(as_yaml)) == {
        "organisations",
        "field_offices",
        "focal_points",
        "forums",
        "national_commissions",
    }
    assert as_csv.splitlines()[0].startswith("slug,name,acronym,sectors")
    assert "ifla,International Federation" in as_csv
    with db.session_scope(engine) as session:
        again = import_directory(session, _write(tmp_path, "x.yaml", as_yaml), now=LATER)
        assert (again.created, again.updated, again.unchanged, again.problems) == (0, 0, 5, [])
        again = import_directory(session, _write(tmp_path, "x.csv", as_csv), now=LATER)
        assert (again.created, again.updated, again.unchanged, again.problems) == (0, 0, 2, [])


def test_cli_import_prints_problems_and_exits_1_export_writes_a_file(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, "directory.yaml", DIRECTORY_YAML)
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", sqlite_url]
    result = runner.invoke(cli, [*base, "directory", "import", str(path)])
    assert result.exit_code == 1, result.output
    assert "5 rows created" in result.output
    assert f"{path}:29: Sector 'XY'" in result.output
    out = tmp_path / "ngos.csv"
    result = runner.invoke(cli, [*base, "directory", "export", "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count("\n") == 3
    result = runner.invoke(cli, [*base, "directory", "import", str(out), "--kind", "organisations"])
    assert result.exit_code == 0, result.output
    assert "0 rows created, 0 updated, 2 unchanged, 0 rejected" in result.output
    result = runner.invoke(cli, [*base, "directory", "export"])
    assert yaml.safe_load(result.output)["field_offices"][0]["code"] == "dhaka"


def test_yaml_shapes_a_bare_list_needs_kind_and_unknown_sections_are_named(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(sqlite_url)
    offices = _write(
        tmp_path,
        "offices.yaml",
        "- {code: hanoi, name: UNESCO Office in Hanoi, city: Hanoi, country: VN}\n"
        "- {code: quito, name: UNESCO Quito, city: Quito, country: EC, countries: [EC, CO],"
        " colour: blue}\n",
    )
    with db.session_scope(engine) as session:
        with pytest.raises(InvalidInput, match="needs --kind"):
            import_directory(session, offices, now=NOW)
        report = import_directory(session, offices, now=NOW, kind="field_offices")
    # An unknown field is named once and ignored: the entry is imported without it.
    assert (report.created, report.problems) == (2, [])
    assert report.warnings == [
        f"{offices}:2: unknown field_offices field(s) colour ignored; known field_offices "
        "fields: code, name, city, country, countries, email, website"
    ]
    sections = _write(tmp_path, "bad.yaml", "organisations: []\nmembers:\n  - {slug: x}\n")
    with (
        db.session_scope(engine) as session,
        pytest.raises(InvalidInput, match=":2: unknown section"),
    ):
        import_directory(session, sections, now=NOW)
    broken = _write(tmp_path, "broken.yaml", "organisations:\n  - slug: [unclosed\n")
    with db.session_scope(engine) as session, pytest.raises(InvalidInput, match="not valid YAML"):
        import_directory(session, broken, now=NOW)
    engine.dispose()
