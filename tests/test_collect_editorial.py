"""Editorial entries: Markdown with front matter, validated, imported, re-imported in place."""

from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db
from diffusion.collect.editorial import import_entries
from diffusion.errors import InvalidInput
from diffusion.models import Item

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

GOOD = """\
---
kind: ngo_action
title: "IFLA: reading clubs in <b>Nairobi</b> libraries"
date: 2026-11-02T10:00:00+03:00
language: en
link: https://www.ifla.org/news/reading-clubs
public: false
sectors: [CI, ED]
countries: KE
themes: [libraries, literacy]
sdgs: [SDG4, 10]
organisations: [ifla]
translations:
  fr:
    title: "IFLA : clubs de lecture à Nairobi"
    body: |
      Des **clubs** dans [les bibliothèques](/fr/bibliotheques).
---
Reading clubs opened in **five** public libraries. See the [report](/reports/2026.pdf).

<script>alert("x")</script><p onclick="steal()">More</p>
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text), encoding="utf-8")
    return path


def stored(engine: Engine) -> list[Item]:
    with db.session_scope(engine) as session:
        return list(session.exec(select(Item).order_by(col(Item.guid))).all())


def test_an_entry_is_imported_with_every_field_and_sanitised(
    engine: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, "entries/2026-11-ifla-reading-clubs.md", GOOD)
    with db.session_scope(engine) as session:
        report = import_entries(session, path, now=NOW)
    assert report.problems == []
    assert (report.created, report.updated, report.unchanged) == (1, 0, 0)
    (item,) = stored(engine)
    assert item.guid == "urn:diffusion:entry:2026-11-ifla-reading-clubs"
    assert item.origin == "editorial" and item.source_id is None
    assert item.kind == "ngo_action" and item.public is False and item.language == "en"
    assert item.title == "IFLA: reading clubs in Nairobi libraries"
    assert item.published_at == datetime(2026, 11, 2, 7, tzinfo=UTC)
    assert item.collected_at == NOW
    assert item.tags == {
        "sectors": ["CI", "ED"],
        "countries": ["KE"],
        "themes": ["libraries", "literacy"],
        "sdgs": ["4", "10"],
        "organisations": ["ifla"],
    }
    assert "<strong>five</strong>" in item.body_html
    assert 'href="https://www.ifla.org/reports/2026.pdf"' in item.body_html
    assert "<script" not in item.body_html and "onclick" not in item.body_html
    assert item.summary.startswith("Reading clubs opened in five public libraries.")
    french = item.translations["fr"]
    assert french["title"] == "IFLA : clubs de lecture à Nairobi"
    assert "<strong>clubs</strong>" in french["body_html"]
    assert french["summary"] == "Des clubs dans les bibliothèques."


def test_a_folder_imports_good_files_and_reports_bad_ones_at_their_line(
    engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "entries"
    write(folder, "good.md", GOOD)
    write(
        folder,
        "sub/plan.md",
        """\
        ---
        kind: ngo_plan
        title: Plan
        date: 2026-11-05
        tags: {sectors: [SHS], countries: [NP]}
        ---
        Body.
        """,
    )
    bad_country = write(
        folder,
        "bad-country.md",
        """\
        ---
        kind: ngo_action
        title: Somewhere
        date: 2026-11-02
        countries: [KE, XX]
        ---
        """,
    )
    bad_many = write(
        folder,
        "bad-many.md",
        """\
        ---
        kind: newsletter
        title: ""
        date: next tuesday
        language: klingon
        link: javascript:alert(1)
        sectors: [EDU]
        colour: blue
        ---
        """,
    )
    bad_yaml = write(folder, "bad-yaml.md", "---\nkind: ngo_action\ntitle: [unclosed\n---\n")
    no_meta = write(folder, "notes.md", "Just some notes.\n")
    bad_day = write(folder, "bad-day.md", "---\nkind: event\ntitle: T\ndate: 2026-13-45\n---\n")
    with db.session_scope(engine) as session:
        report = import_entries(session, folder, now=NOW)
    assert (report.created, report.updated) == (2, 0)
    assert sorted(item.guid for item in stored(engine)) == [
        "urn:diffusion:entry:good",
        "urn:diffusion:entry:plan",
    ]
    problems = report.problems
    assert f"{bad_country}:5: countries: 'XX' is not an ISO 3166-1 alpha-2 code" in "\n".join(
        problems
    )
    expected_lines = {
        "kind: 'newsletter' is not one of": 2,
        "title: missing or empty": 3,
        "date: 'next tuesday' is not a date": 4,
        "language: 'klingon' is not an ISO 639 code": 5,
        "link: 'javascript:alert(1)' is not an http": 6,
        "sectors: 'EDU' is not a Sector code": 7,
        "unknown key 'colour'": 8,
    }
    for reason, line in expected_lines.items():
        assert any(p.startswith(f"{bad_many}:{line}: {reason}") for p in problems), reason
    assert any(p.startswith(f"{bad_yaml}:") and "not valid YAML" in p for p in problems)
    assert any(p.startswith(f"{no_meta}: no front matter") for p in problems)
    assert f"{bad_day}:4: date: not a valid date (month must be in 1..12)" in "\n".join(problems)


def test_reimport_updates_in_place_and_counts_unchanged(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "entry.md", GOOD)
    with db.session_scope(engine) as session:
        import_entries(session, path, now=NOW)
    with db.session_scope(engine) as session:
        again = import_entries(session, path, now=NOW)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    path.write_text(GOOD.replace("reading clubs in", "reading circles in"), encoding="utf-8")
    with db.session_scope(engine) as session:
        changed = import_entries(session, path, now=NOW)
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 0)
    (item,) = stored(engine)
    assert item.title == "IFLA: reading circles in Nairobi libraries"


def test_duplicate_guids_across_files_are_reported(sqlite_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(sqlite_url)
    first = write(tmp_path / "a" / "b", "same.md", GOOD)  # files are read in sorted order
    second = write(tmp_path / "a", "same.md", GOOD)
    with db.session_scope(engine) as session:
        report = import_entries(session, tmp_path / "a", now=NOW)
    assert report.created == 1
    assert report.problems == [
        f"{second}:1: guid 'urn:diffusion:entry:same' is also the guid of "
        f"{first}; give one of them its own `guid:`"
    ]
    engine.dispose()


def test_a_missing_path_is_an_error(sqlite_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session, pytest.raises(InvalidInput, match="nowhere"):
        import_entries(session, tmp_path / "nowhere", now=NOW)
    engine.dispose()
