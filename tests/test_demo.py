"""The demo dataset: loads on both databases, dated around now, complete, and idempotent."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import frontmatter
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from diffusion.cli import cli
from diffusion.config import Settings
from diffusion.contracts import Period
from diffusion.demo import demo_date, load_demo
from diffusion.models import (
    AUDIENCES,
    CONTENT_KINDS,
    FieldOffice,
    Forum,
    Item,
    Organisation,
    Person,
    Source,
    Subscription,
)
from tests.people import RULES

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def test_demo_dates_fall_in_this_month_or_the_last_and_never_after_now(
    settings: Settings,
) -> None:
    zone = settings.zone
    # The first minutes of a month, the last of a month, and a leap February.
    for now in (
        datetime(2026, 10, 31, 23, 10, tzinfo=UTC),
        datetime(2027, 1, 31, 12, 0, tzinfo=UTC),
        datetime(2028, 3, 1, 0, 0, tzinfo=UTC),
    ):
        current = Period.containing(now, "monthly", zone)
        previous = Period.containing(current.start - timedelta(days=1), "monthly", zone)
        for days_ago in range(60):
            moment = demo_date(days_ago, now, zone)
            assert moment <= now
            period = current if days_ago < 30 else previous
            assert period.start <= moment < period.end, (now, days_ago, moment)


def test_demo_loads_everything_once(engine: Engine, settings: Settings) -> None:
    first = load_demo(engine, settings, now=NOW, rules=RULES)
    with Session(engine) as session:
        items = session.exec(select(Item)).all()
        subscribers = session.exec(select(Subscription)).all()
        people = {p.id: p for p in session.exec(select(Person))}
        organisations = {o.slug for o in session.exec(select(Organisation))}
        offices = {o.code: o for o in session.exec(select(FieldOffice))}
        forums = {f.slug for f in session.exec(select(Forum))}
    assert len(items) >= 60 and first.item_count == len(items)
    kinds = Counter(item.kind for item in items)
    assert all(kinds[kind] >= 2 for kind in CONTENT_KINDS), kinds
    assert {item.language for item in items} == {"en", "fr"}
    assert any(item.translations.get("fr") for item in items)
    assert any(not item.public for item in items)
    assert sum(item.public for item in items) > len(items) / 2
    tag_keys = {key for item in items for key, values in item.tags.items() if values}
    assert {"sectors", "countries", "themes", "sdgs", "organisations"} <= tag_keys
    assert {"field_offices", "forums"} <= tag_keys
    current = Period.containing(NOW, "monthly", settings.zone)
    previous = Period.containing(current.start - timedelta(days=1), "monthly", settings.zone)
    assert all(previous.start <= item.published_at < current.end for item in items)
    assert sum(item.published_at >= current.start for item in items) >= 20
    assert len(subscribers) >= 50
    assert {s.audience for s in subscribers} == set(AUDIENCES)
    assert {p.language for p in people.values()} == {"en", "fr"}
    assert any(s.cadence == "weekly" for s in subscribers)
    assert any(s.sectors or s.themes for s in subscribers)
    assert {"ifla", "icsc"} <= organisations and len(organisations) >= 20
    assert "dhaka" in offices and len(offices) >= 8
    covered = {country for office in offices.values() for country in office.countries}
    assert {"BD", "NP", "VN", "KE", "IN", "CO"} <= covered
    assert {"icngo-2020", "iclc-2019", "lnob-dhaka-2018"} <= forums
    assert first.audiences == dict(sorted(Counter(s.audience for s in subscribers).items()))

    again = load_demo(engine, settings, now=NOW + timedelta(hours=1), rules=RULES)
    assert again.collection.new == 0
    assert (again.directory.created, again.subscribers.created, again.entries.created) == (0, 0, 0)
    with Session(engine) as session:
        assert len(session.exec(select(Item)).all()) == len(items)
        assert len(session.exec(select(Subscription)).all()) == len(subscribers)
        assert len(session.exec(select(Source)).all()) == len(first.sources)


def test_demo_files_are_real_feeds_and_markdown(engine: Engine, settings: Settings) -> None:
    load_demo(engine, settings, now=NOW, rules=RULES)
    feeds = sorted((settings.var_dir / "demo" / "feeds").glob("*.xml"))
    versions = set()
    for path in feeds:
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        assert parsed.entries
        versions.add(parsed.version[:3])
    assert versions == {"rss", "ato"}
    entry = frontmatter.load(settings.var_dir / "demo" / "entries" / "conclusion-lnob-dhaka.md")
    assert entry["kind"] == "forum_conclusion"
    assert "Dhaka" in entry.content


def test_demo_command_loads_and_prints_a_summary(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'var' / 'demo.db'}"
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["--home", str(home), "--database-url", url, "demo"])
        assert result.exit_code == 0, result.output
    assert "NGOs in official partnership" in result.output
    assert "field_office_activity" in result.output
    assert "liaison_committee" in result.output
    prefix = f"diffusion --home {home} --database-url {url}"
    assert f"{prefix} items list --kind ngo_action" in result.output
    assert f"{prefix} preview --audience ngo:ifla" in result.output
    result = runner.invoke(
        cli, ["--home", str(home), "--database-url", url, "subscribers", "list", "--format", "csv"]
    )
    assert len(result.output.splitlines()) == 58
