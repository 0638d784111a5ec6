"""The digest builder and stored editions: ranking, narrowing, languages, the cap, concurrency."""

import json
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from digest_dataset import NOW, directory, items, store
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.cli import cli
from diffusion.config import Settings, bundled_path, load_settings
from diffusion.contracts import Digest, Period, Segment
from diffusion.editions import BuildResult, build_editions, digest_for
from diffusion.errors import InvalidInput, UnknownAudience
from diffusion.models import Edition, Item
from diffusion.select.digest import build_digest
from diffusion.select.rules import load_rules
from tests.people import enrol

ZONE = load_settings().zone
NOVEMBER = Period.parse("2026-11", ZONE)
RULES = load_rules(bundled_path("routing"))


def _digest(segment: Segment, max_items: int = 40, extra: list[Item] | None = None) -> Digest:
    return build_digest(
        [*items(), *(extra or [])],
        directory(),
        RULES,
        segment=segment,
        period=NOVEMBER,
        now=NOW,
        max_items=max_items,
        more_url="https://diffusion.example/feeds/x.en.atom",
    )


def _guids(digest: Digest) -> list[str]:
    by_id = {item.id: item.guid for item in items()}
    return [by_id[entry.item_id] for section in digest.sections for entry in section.entries]


def test_ngo_digest_groups_its_items_by_kind_in_rule_order() -> None:
    digest = _digest(Segment("ngo", "ifla"))
    assert [section.kind for section in digest.sections] == [
        "ngo_action",
        "field_office_activity",
        "programme_update",
        "forum_conclusion",
        "event",
    ]
    assert [section.heading for section in digest.sections][:2] == [
        "NGO actions",
        "Field Office activities",
    ]
    # The October action is outside the period; private items never reach an NGO not theirs.
    assert sorted(_guids(digest)) == sorted(
        [
            "ifla-reading-bd",
            "dhaka-office-literacy",
            "apia-office-literacy",
            "ed-programme-nairobi",
            "icngo-conclusions",
            "world-book-day",
        ]
    )
    assert digest.title == "IFLA: NGO partners' newsletter, November 2026"
    assert digest.item_count == 6 and digest.more_count == 0
    focal = digest.references[0]
    assert focal.kind == "focal_points"
    # IFLA's own Sectors (CI, ED) come before the others.
    assert [row[0] for row in focal.rows] == [
        "Communication and Information",
        "Education",
        "Natural Sciences",
    ]


def test_items_about_the_key_come_first_then_the_newest() -> None:
    digest = _digest(Segment("national_commission", "FJ"))
    assert _guids(digest) == ["apia-office-literacy"]
    liaison = _digest(Segment("liaison_committee"))
    actions = next(section for section in liaison.sections if section.kind == "ngo_action")
    dates = [entry.published_at for entry in actions.entries]
    assert dates == sorted(dates, reverse=True)
    # Bangladesh's Member State digest: an action tagged BD before a newer one only related.
    newer_related = Item(
        id=50,
        guid="newer-forum-bd",
        kind="forum_conclusion",
        title="Newer conclusion",
        published_at=datetime(2026, 11, 20, tzinfo=UTC),
        content_hash="f" * 64,
        tags={"forums": ["icngo-2020"], "countries": ["FR"]},
    )
    older_about = Item(
        id=51,
        guid="older-about-fr",
        kind="forum_conclusion",
        title="Older conclusion about France",
        published_at=datetime(2026, 11, 2, tzinfo=UTC),
        content_hash="e" * 64,
        tags={"countries": ["FR"]},
    )
    newest_unrelated = Item(
        id=52,
        guid="newest-forum-only",
        kind="forum_conclusion",
        title="Newest conclusion of a forum held in France",
        published_at=datetime(2026, 11, 25, tzinfo=UTC),
        content_hash="d" * 64,
        tags={"forums": ["icngo-2020"]},
    )
    france = _digest(
        Segment("member_state", "FR"), extra=[newer_related, older_about, newest_unrelated]
    )
    ids = [entry.item_id for section in france.sections for entry in section.entries]
    assert ids == [50, 51, 52, 7]


def test_private_items_reach_only_the_audiences_that_include_them() -> None:
    assert "icsc-private-ke" in _guids(_digest(Segment("member_state", "KE")))
    assert "icsc-private-ke" in _guids(_digest(Segment("liaison_committee")))
    assert "icsc-private-ke" in _guids(_digest(Segment("ngo", "icsc")))
    assert "icsc-private-ke" not in _guids(_digest(Segment("national_commission", "KE")))
    assert "icsc-private-ke" not in _guids(_digest(Segment("public")))
    assert "medellin-private" not in _guids(_digest(Segment("ngo", "ifla")))


def test_narrowing_keeps_items_matching_a_chosen_value_of_each_dimension() -> None:
    everything = _guids(_digest(Segment("liaison_committee")))
    assert len(everything) == 10
    education = _guids(_digest(Segment("liaison_committee", sectors=("ED",))))
    assert education == ["dhaka-office-literacy", "ed-programme-nairobi"]
    two = _guids(_digest(Segment("liaison_committee", sectors=("ED", "SC"))))
    assert sorted(two) == ["dhaka-office-literacy", "ed-programme-nairobi", "ocean-plan-fj"]
    pacific = _guids(_digest(Segment("liaison_committee", regions=("Pacific",))))
    assert pacific == ["ocean-plan-fj"]
    both = _guids(_digest(Segment("liaison_committee", sectors=("ED",), regions=("Africa",))))
    assert both == ["ed-programme-nairobi"]
    literacy = _guids(_digest(Segment("liaison_committee", themes=("Literacy",))))
    assert sorted(literacy) == ["apia-office-literacy", "world-book-day"]


def test_entries_are_shown_in_the_readers_language_or_marked_as_fallback() -> None:
    digest = _digest(Segment("sector", "CI", language="fr"))
    entries = {entry.item_id: entry for section in digest.sections for entry in section.entries}
    translated = entries[1]
    assert (translated.title, translated.language, translated.fallback) == (
        "Cercles de lecture au Bangladesh",
        "fr",
        False,
    )
    assert translated.summary == "Cercles de lecture à Dacca."
    assert translated.link == "https://news.example/ifla-reading-bd"  # no translated link
    assert entries[11].fallback is False and entries[11].title == "Action en français"
    assert digest.sections[0].heading == "Actions des ONG"
    assert digest.title == (
        "Communication et information : actions et projets des ONG, novembre 2026"
    )
    english = _digest(Segment("sector", "CI", language="en"))
    shown = {entry.item_id: entry for section in english.sections for entry in section.entries}
    assert shown[11].fallback is True and shown[11].language == "fr"
    assert shown[1].fallback is False and shown[1].title == "Ifla reading bd"


def test_the_cap_keeps_the_best_ranked_and_counts_the_rest() -> None:
    digest = _digest(Segment("liaison_committee"), max_items=3)
    assert digest.item_count == 3
    assert digest.more_count == 7
    # Sections shown count what they left out; kinds cut off entirely count in the total only.
    assert [(s.kind, len(s.entries), s.more_count) for s in digest.sections] == [
        ("ngo_action", 1, 2),
        ("forum_conclusion", 1, 1),
        ("event", 1, 0),
    ]
    assert digest.more_url == "https://diffusion.example/feeds/x.en.atom"
    shown = {entry.published_at for section in digest.sections for entry in section.entries}
    assert min(shown) == datetime(2026, 11, 10, 12, 0, tzinfo=UTC)  # the three newest
    directory_list = digest.references[0]
    assert directory_list.kind == "ngo_directory"
    # No NGO's entry changed in November: the whole directory is online, not in the email.
    assert directory_list.rows == () and directory_list.more_count == 3


def test_reference_lists_put_the_keys_own_first() -> None:
    kenya = _digest(Segment("member_state", "KE"), max_items=2).references[0]
    assert [row[0] for row in kenya.rows] == [
        "International Civil Society Centre",
        "International Federation of Library Associations (IFLA)",
    ]
    assert kenya.more_count == 1
    experts = _digest(Segment("sector", "SC")).references[0]
    assert experts.kind == "expert_ngos"
    assert [row[0] for row in experts.rows] == ["Ocean Literacy Network (OLN)"]
    assert experts.columns[0] == "Organisation"


def test_an_audience_with_nothing_this_period_gets_an_empty_digest() -> None:
    digest = _digest(Segment("field_office", "dhaka"), extra=[])
    assert digest.item_count == 1
    week = Period.parse("2026-W48", ZONE)
    empty = build_digest(
        items(),
        directory(),
        RULES,
        segment=Segment("field_office", "dhaka", cadence="weekly"),
        period=week,
        now=NOW,
        max_items=40,
    )
    assert empty.is_empty and empty.sections == ()
    assert empty.title == "UNESCO Dhaka Office: NGO actions in your countries, week 48, 2026"


# --- stored editions ---------------------------------------------------------------------------


def _subscribe(engine: Engine, *rows: tuple[str, str, str, str]) -> None:
    with db.session_scope(engine) as session:
        for email, audience, key, language in rows:
            enrol(session, email=email, audience=audience, key=key, language=language)


SUBSCRIBERS = (
    ("a@example.org", "ngo", "ifla", "en"),
    ("b@example.org", "ngo", "ifla", "en"),  # same segment as a@
    ("c@example.org", "ngo", "ifla", "fr"),
    ("d@example.org", "sector", "ED", "en"),
    ("e@example.org", "field_office", "dhaka", "en"),
    ("f@example.org", "member_state", "CO", "fr"),
    ("g@example.org", "national_commission", "WS", "en"),
)


def _by_segment(results: list[BuildResult]) -> dict[str, BuildResult]:
    return {result.segment: result for result in results}


def test_build_editions_stores_one_rendered_edition_per_segment(
    engine: Engine, settings: Settings
) -> None:
    store(engine)
    _subscribe(engine, *SUBSCRIBERS)
    with db.session_scope(engine) as session:
        enrol(session, email="gone@example.org", audience="sector", key="SC", status="unsubscribed")
    results = _by_segment(
        build_editions(
            engine, settings, rules=load_rules(settings.routing), now=NOW, period="2026-11"
        )
    )
    assert set(results) == {
        "ngo:ifla|en|monthly",
        "ngo:ifla|fr|monthly",
        "sector:ED|en|monthly",
        "field_office:dhaka|en|monthly",
        "member_state:CO|fr|monthly",
        "national_commission:WS|en|monthly",
    }
    ifla = results["ngo:ifla|en|monthly"]
    assert (ifla.subscribers, ifla.item_count, ifla.status, ifla.action) == (
        2,
        6,
        "approved",
        "created",
    )
    assert results["member_state:CO|fr|monthly"].item_count == 1  # the private Medellín conclusion
    with db.session_scope(engine) as session:
        editions = {edition.segment: edition for edition in session.exec(select(Edition)).all()}
    assert len(editions) == 6
    french = editions["ngo:ifla|fr|monthly"]
    assert french.language == "fr" and "Cercles de lecture au Bangladesh" in french.html
    assert "Cercles de lecture au Bangladesh" in french.text
    assert "[[diffusion:unsubscribe_url]]" in french.text
    assert french.period == "2026-11" and french.approved_at == NOW

    # Built again: approved editions are kept as they are.
    again = _by_segment(
        build_editions(
            engine,
            settings,
            rules=load_rules(settings.routing),
            now=NOW + timedelta(hours=1),
            period="2026-11",
        )
    )
    assert {result.action for result in again.values()} == {"kept"}
    assert again["ngo:ifla|en|monthly"].edition_id == ifla.edition_id


def test_drafts_and_empty_editions_are_rebuilt_and_filtered_by_audience(
    engine: Engine, settings: Settings
) -> None:
    settings = settings.replace(require_approval=True)
    store(engine)
    _subscribe(engine, *SUBSCRIBERS)
    first = _by_segment(
        build_editions(
            engine,
            settings,
            rules=load_rules(settings.routing),
            now=NOW,
            period="2026-11",
            audience="ngo:ifla",
        )
    )
    assert set(first) == {"ngo:ifla|en|monthly", "ngo:ifla|fr|monthly"}
    assert {result.status for result in first.values()} == {"draft"}
    extra = Item(
        guid="late-ifla-action",
        kind="ngo_action",
        title="Late action",
        published_at=datetime(2026, 11, 27, tzinfo=UTC),
        content_hash="a" * 64,
        tags={"organisations": ["ifla"]},
    )
    with db.session_scope(engine) as session:
        session.add(extra)
    second = _by_segment(
        build_editions(
            engine,
            settings,
            rules=load_rules(settings.routing),
            now=NOW,
            period="2026-11",
            audience="ngo",
        )
    )
    assert second["ngo:ifla|en|monthly"].action == "rebuilt"
    assert second["ngo:ifla|en|monthly"].item_count == 7
    assert second["ngo:ifla|en|monthly"].edition_id == first["ngo:ifla|en|monthly"].edition_id

    # A weekly period builds weekly segments only; nothing this week: an empty edition.
    with db.session_scope(engine) as session:
        enrol(session, email="w@example.org", audience="field_office", key="apia", cadence="weekly")
    weekly = build_editions(
        engine, settings, rules=load_rules(settings.routing), now=NOW, period="2026-W47"
    )
    assert [(r.segment, r.status, r.item_count) for r in weekly] == [
        ("field_office:apia|en|weekly", "empty", 0)
    ]
    with pytest.raises(UnknownAudience, match="unknown Sector 'XX'"):
        build_editions(
            engine, settings, rules=load_rules(settings.routing), now=NOW, audience="sector:XX"
        )
    with pytest.raises(InvalidInput, match="period '2026-13'"):
        build_editions(
            engine, settings, rules=load_rules(settings.routing), now=NOW, period="2026-13"
        )


def test_without_a_period_an_edition_covers_the_time_since_the_previous_one(
    engine: Engine, settings: Settings
) -> None:
    store(engine)
    with db.session_scope(engine) as session:  # collected as they were published, not today
        for found in session.exec(select(Item)):
            found.collected_at = found.published_at
            session.add(found)
    _subscribe(engine, ("d@example.org", "sector", "CI", "en"))
    october = build_editions(
        engine,
        settings,
        rules=load_rules(settings.routing),
        now=datetime(2026, 10, 31, tzinfo=UTC),
        period="2026-10",
    )
    assert october[0].item_count == 1
    # The previous edition was built on 31 October: the October item published the 15th is
    # not repeated, and November's are in.
    # Without a period, the past month: on 1 December, November (what the scheduler sends).
    current = build_editions(
        engine,
        settings,
        rules=load_rules(settings.routing),
        now=datetime(2026, 12, 1, 9, tzinfo=UTC),
    )
    assert current[0].period == "2026-11"
    assert current[0].item_count == 2  # ifla-reading-bd and the French action


def test_digest_for_previews_an_audience_or_a_subscriber_without_storing(
    engine: Engine, settings: Settings
) -> None:
    store(engine)
    _subscribe(engine, ("x@example.org", "sector", "SC", "fr"))
    digest = digest_for(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="member_state",
        key="co",
        language="en",
        period="2026-11",
        now=NOW,
    )
    assert digest.segment.key == "CO" and digest.item_count == 1
    assert digest.more_url == "http://127.0.0.1:8080/news/country/CO?lang=en"  # HTML, not XML
    mine = digest_for(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="",
        key="",
        language="en",
        period="2026-11",
        now=NOW,
        subscriber_email="X@example.org",
    )
    assert mine.segment == Segment("sector", "SC", language="fr")
    assert mine.sections[0].heading == "Travaux prévus des ONG"
    with db.session_scope(engine) as session:
        assert session.exec(select(Edition)).all() == []
    with pytest.raises(UnknownAudience, match="unknown organisation 'nobody'"):
        digest_for(
            engine,
            settings,
            rules=load_rules(settings.routing),
            audience="ngo",
            key="nobody",
            language="en",
            period=None,
            now=NOW,
        )


@pytest.mark.postgres
def test_two_concurrent_builds_make_one_edition_per_segment(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    store(engine)
    rows = [
        (f"s{number}@example.org", audience, key, language)
        for number, (audience, key) in enumerate(
            [("ngo", "ifla"), ("ngo", "icsc"), ("ngo", "ocean"), ("sector", "ED"), ("sector", "CI"),
             ("sector", "SC"), ("member_state", "BD"), ("member_state", "KE"),
             ("field_office", "apia"), ("national_commission", "FJ"), ("public", "")]
        )
        for language in ("en", "fr")
    ]  # fmt: skip
    rows = [(f"{language}{email}", a, k, language) for email, a, k, language in rows]
    _subscribe(engine, *rows)
    barrier = threading.Barrier(2)
    outcomes: list[list[BuildResult]] = []
    errors: list[BaseException] = []

    def run() -> None:
        own = db.engine_for(settings)  # each "process" with its own connection pool
        try:
            barrier.wait()
            outcomes.append(
                build_editions(
                    own, settings, rules=load_rules(settings.routing), now=NOW, period="2026-11"
                )
            )
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    segments = len(rows)
    assert [len(outcome) for outcome in outcomes] == [segments, segments]
    created = [r for outcome in outcomes for r in outcome if r.action == "created"]
    assert len(created) == segments  # each segment created by exactly one of the two
    with db.session_scope(engine) as session:
        stored = session.exec(select(Edition)).all()
    assert len(stored) == segments
    assert len({(edition.segment, edition.period) for edition in stored}) == segments
    ids = {(r.segment, r.edition_id) for outcome in outcomes for r in outcome}
    assert len(ids) == segments  # both runs report the same edition for a segment


# --- the command line --------------------------------------------------------------------------


def _run(home: Path, url: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), "--database-url", url, *args])
    assert result.exit_code == code, result.output
    return result.output


def test_cli_digest_build_list_and_show(tmp_path: Path, sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    store(engine)
    _subscribe(
        engine, ("a@example.org", "ngo", "ifla", "fr"), ("d@example.org", "sector", "SC", "en")
    )
    _subscribe(engine, ("w@example.org", "field_office", "apia", "en"))
    engine.dispose()
    built = _run(
        tmp_path, sqlite_url, "digest", "build", "--period", "2026-W47", "--now", NOW.isoformat()
    )
    assert "No segment to build" in built  # nobody is weekly
    built = _run(
        tmp_path, sqlite_url, "digest", "build", "--period", "2026-10", "--now", NOW.isoformat()
    )
    assert "3 segments: 3 created, 0 rebuilt, 0 kept." in built
    assert "ngo:ifla" in built
    assert "3 empty (nothing new; will not be sent)" not in built
    assert "2 empty (nothing new; will not be sent)" in built  # October: only IFLA's action
    listing = _run(tmp_path, sqlite_url, "digest", "list", "--status", "approved")
    assert "ngo:ifla|fr|monthly" in listing and "sector:SC" not in listing
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session:
        edition = session.exec(select(Edition).where(Edition.status == "approved")).one()
    engine.dispose()
    as_json = json.loads(
        _run(tmp_path, sqlite_url, "digest", "show", str(edition.id), "--format", "json")
    )
    assert as_json["segment"] == "ngo:ifla|fr|monthly" and as_json["item_count"] == 1
    text = _run(tmp_path, sqlite_url, "digest", "show", str(edition.id))
    assert text.startswith(f"Subject: {edition.subject}") and "October action" in text
    assert "<html" in _run(
        tmp_path, sqlite_url, "digest", "show", str(edition.id), "--format", "html"
    )
    # Errors become a message and exit code 2 through the real entry point.
    missing = subprocess.run(
        [str(Path(sys.executable).parent / "diffusion"), "--home", str(tmp_path), "--database-url",
         sqlite_url, "digest", "build", "--audience", "sector:XX"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "unknown Sector 'XX'" in missing.stderr


@pytest.mark.postgres
def test_two_processes_building_at_once_store_one_edition_per_segment(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    store(engine)
    _subscribe(engine, *SUBSCRIBERS)
    command = [
        str(Path(sys.executable).parent / "diffusion"),
        "--home",
        str(tmp_path),
        "--database-url",
        settings.database,
        "digest",
        "build",
        "--period",
        "2026-11",
        "--now",
        NOW.isoformat(),
    ]
    # The summary is said on stderr when stdout is a pipe (which gets the rows only).
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    with db.session_scope(engine) as session:
        stored = session.exec(select(Edition)).all()
    assert len(stored) == 6 == len({edition.segment for edition in stored})
    summaries = [
        re.search(r"6 segments: (\d+) created, 0 rebuilt, (\d+) kept", out) for out in outputs
    ]
    assert all(summaries), outputs
    created = sum(int(found.group(1)) for found in summaries if found)
    assert created == 6  # each segment created by one process, kept by the other


def test_an_item_collected_after_its_period_went_out_is_in_the_next_edition_once(
    engine: Engine, settings: Settings
) -> None:
    def cultural(guid: str, published: datetime, collected: datetime) -> Item:
        return Item(
            guid=guid,
            kind="ngo_action",
            title=guid,
            link=f"https://news.example/{guid}",
            published_at=published,
            collected_at=collected,
            content_hash=guid.ljust(64, "0"),
            tags={"organisations": ["ifla"], "sectors": ["CI"]},
        )

    store(engine)
    _subscribe(engine, ("d@example.org", "sector", "CI", "en"))
    built_october = datetime(2026, 11, 2, 9, tzinfo=UTC)
    october = build_editions(
        engine, settings, rules=load_rules(settings.routing), now=built_october, period="2026-10"
    )
    with db.session_scope(engine) as session:
        for found in session.exec(select(Edition)):
            found.status, found.sent_at = "sent", built_october
            session.add(found)
        session.add(cultural("late-october", datetime(2026, 10, 20, tzinfo=UTC), NOW))
        session.add(cultural("in-time-october", datetime(2026, 10, 21, tzinfo=UTC), built_october))
    assert october[0].item_count == 1

    december = datetime(2026, 12, 1, 9, tzinfo=UTC)
    for period in ("2026-11", None):  # as the scheduler names it, and by default
        result = build_editions(
            engine, settings, rules=load_rules(settings.routing), now=december, period=period
        )[0]
        digest = digest_for(
            engine,
            settings,
            rules=load_rules(settings.routing),
            audience="sector",
            key="CI",
            language="en",
            period=period,
            now=december,
        )
        guids = {entry.title for section in digest.sections for entry in section.entries}
        assert "late-october" in guids  # it missed October's edition
        assert "in-time-october" not in guids  # it was collected in time for it
        with db.session_scope(engine) as session:
            stored = session.get(Edition, result.edition_id)
            assert stored is not None and "late-october" in stored.text
            session.delete(stored)  # build it again the other way
