"""Reference lists in proportion: what changed and what concerns the reader, the rest online."""

from datetime import UTC, datetime
from pathlib import Path

from digest_dataset import NOW, forums, items, offices, organisations
from sqlmodel import select

from diffusion import db, render
from diffusion.collect.directories import import_directory
from diffusion.config import bundled_path, load_settings
from diffusion.contracts import Period, Segment
from diffusion.models import NationalCommission
from diffusion.select.digest import build_digest
from diffusion.select.directory import Directory, read_directory
from diffusion.select.rules import load_rules

RULES = load_rules(bundled_path("routing"))
NOVEMBER = Period.parse("2026-11", load_settings().zone)
COMMISSIONS = [
    NationalCommission(country="BD", name="Bangladesh National Commission for UNESCO",
                       contact_name="Secretary-General", email="bncu@example.org",
                       website="https://bncu.example.org"),
    NationalCommission(country="KE", name="Kenya National Commission for UNESCO",
                       website="https://unesco.example.go.ke"),
    NationalCommission(country="FR", name="Commission nationale française pour l'UNESCO"),
]  # fmt: skip


def _directory(changed: str | None = None) -> Directory:
    orgs = organisations()
    for org in orgs:
        org.updated_at = (
            datetime(2026, 11, 15, tzinfo=UTC) if org.slug == changed else NOW.replace(year=2025)
        )
    return Directory.of(orgs, offices(), forums(), national_commissions=COMMISSIONS)


def _digest(segment: Segment, directory: Directory):  # type: ignore[no-untyped-def]
    return build_digest(
        items(), directory, RULES, segment=segment, period=NOVEMBER, now=NOW, max_items=40
    )


def test_a_member_state_gets_the_ngos_of_its_country_and_those_that_changed() -> None:
    fiji = _digest(Segment("member_state", "FJ"), _directory(changed="icsc"))
    (listed,) = [ref for ref in fiji.references if ref.kind == "ngo_directory"]
    assert [row[0] for row in listed.rows] == [
        "Ocean Literacy Network (OLN)",  # active in Fiji: first
        "International Civil Society Centre",  # changed in November
    ]
    assert listed.more_count == 1
    settings = load_settings(base_url="https://diffusion.example.org")
    rendered = render.render_digest(fiji, settings)
    page = "https://diffusion.example.org/directory/?lang=en&amp;country=FJ"
    assert f'<a href="{page}">1 more entry online</a>' in rendered.html
    assert "https://diffusion.example.org/directory/?lang=en&country=FJ" in rendered.text
    committee = _digest(Segment("liaison_committee"), _directory(changed="ocean"))
    (changed,) = [ref for ref in committee.references if ref.kind == "ngo_directory"]
    assert [row[0] for row in changed.rows] == ["Ocean Literacy Network (OLN)"]
    assert changed.more_count == 2


def test_an_ngo_digest_lists_the_national_commissions_of_its_countries() -> None:
    ifla = _digest(Segment("ngo", "ifla", language="fr"), _directory())
    (listed,) = [ref for ref in ifla.references if ref.kind == "national_commissions"]
    assert listed.heading == "Commissions nationales pour l'UNESCO"
    assert listed.rows == (
        ("Bangladesh National Commission for UNESCO", "Bangladesh", "Secretary-General",
         "bncu@example.org", "https://bncu.example.org"),
        ("Kenya National Commission for UNESCO", "Kenya", "", "", "https://unesco.example.go.ke"),
    )  # fmt: skip


def test_national_commissions_are_imported_like_the_other_directory_kinds(
    tmp_path: Path, sqlite_url: str
) -> None:
    csv_file = tmp_path / "commissions.csv"
    csv_file.write_text(
        "country,name,contact_name,email,website\n"
        "BD,Bangladesh National Commission for UNESCO,,bncu@example.org,https://bncu.example.org\n"
        "XX,Nowhere,,,\n"
    )
    engine = db.make_engine(sqlite_url)
    try:
        with db.session_scope(engine) as session:
            report = import_directory(session, csv_file, now=NOW)
        assert report.created == 1
        assert [problem for problem in report.problems if ":3:" in str(problem)]
        with db.session_scope(engine) as session:
            (stored,) = session.exec(select(NationalCommission)).all()
            assert stored.country == "BD" and stored.email == "bncu@example.org"
            assert set(read_directory(session).national_commissions) == {"BD"}
    finally:
        engine.dispose()


def test_the_directory_page_searches_by_sector_country_and_field(
    tmp_path: Path, sqlite_url: str
) -> None:
    import warnings

    from digest_dataset import store

    from diffusion.runtime import Runtime
    from diffusion.web import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    settings = load_settings(
        home=tmp_path, database_url=sqlite_url, secret_key="test-secret-key-for-signing-links"
    )
    engine = db.engine_for(settings)
    store(engine)
    with db.session_scope(engine) as session:
        session.add_all([NationalCommission(**nc.model_dump()) for nc in COMMISSIONS])
    with TestClient(create_app(Runtime(settings, engine=engine))) as client:
        page = client.get("/directory/?country=KE&lang=fr").text
        assert '<html lang="fr"' in page and "Répertoire des ONG partenaires" in page
        assert "<h3>International Civil Society Centre</h3>" in page
        assert "<h3>International Federation of Library Associations (IFLA)</h3>" in page
        assert "Ocean Literacy Network" not in page
        assert "Kenya National Commission for UNESCO" in page
        assert '<option value="KE" selected>Kenya</option>' in page
        by_sector = client.get("/directory/?sector=SC").text
        assert "Ocean Literacy Network" in by_sector and "IFLA" not in by_sector
        by_field = client.get("/directory/?field=CIVIC").text
        assert "International Civil Society Centre" in by_field and "IFLA" not in by_field
        nothing = client.get("/directory/?field=%3Cscript%3E").text
        assert "No NGO matches this search." in nothing and "<script>" not in nothing
    engine.dispose()
