"""The demo dataset: a directory, subscribers, feeds and editorial entries dated around `now`."""

import calendar
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import frontmatter
import sqlalchemy as sa
import yaml
from feedgen.feed import FeedGenerator
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from diffusion import db
from diffusion.collect import editorial
from diffusion.collect.directories import import_directory
from diffusion.collect.run import CollectionSummary, run_collection
from diffusion.config import Settings
from diffusion.errors import InvalidInput
from diffusion.models import (
    FieldOffice,
    FocalPoint,
    Forum,
    Item,
    Organisation,
    Source,
    Subscription,
)
from diffusion.rows import ImportReport
from diffusion.select.rules import RoutingRules
from diffusion.subscriptions import import_subscribers

DATA = Path(__file__).resolve().parent
# Templates count back from the day the demo runs: below 30 days the item falls in the current
# month, from 30 to 59 in the previous one, so this month's and last month's digests are full.
MONTH_SPAN = 30
GUID_PREFIX = "urn:diffusion:demo:"


@dataclass
class DemoSummary:
    """What the demo loaded, and the counts the `demo` command shows."""

    directory: ImportReport
    subscribers: ImportReport
    entries: ImportReport
    collection: CollectionSummary
    sources: list[str] = field(default_factory=list)
    organisations: int = 0
    field_offices: int = 0
    focal_points: int = 0
    forums: int = 0
    items: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, language) -> count
    audiences: dict[str, int] = field(default_factory=dict)  # subscribers per audience

    @property
    def item_count(self) -> int:
        return sum(self.items.values())


def demo_date(days_ago: int, now: datetime, zone: ZoneInfo) -> datetime:
    """The publication time of a template: in the current month below 30 days, else the last.

    Offsets are scaled to the days the month has had so far, so that even on the 1st the
    current month holds its share of items, and nothing is ever dated after `now`.
    """
    if not 0 <= days_ago < 2 * MONTH_SPAN:
        raise InvalidInput(f"days_ago {days_ago}: expected 0 to {2 * MONTH_SPAN - 1}")
    local = now.astimezone(zone)
    month_start = datetime.combine(local.date().replace(day=1), time(), zone)
    if days_ago < MONTH_SPAN:
        elapsed = local - month_start
        return max(month_start, local - elapsed * days_ago / MONTH_SPAN - timedelta(minutes=5))
    previous = (month_start - timedelta(days=1)).date()
    length = calendar.monthrange(previous.year, previous.month)[1]
    day = date(previous.year, previous.month, 1) + timedelta(
        days=(days_ago - MONTH_SPAN) * length // MONTH_SPAN
    )
    return datetime.combine(day, time(9, 30), zone)


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DATA / name).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise InvalidInput(f"{DATA / name}: expected a mapping at the top level")
    return data


def write_feeds(folder: Path, *, now: datetime, zone: ZoneInfo) -> list[dict[str, Any]]:
    """Write each demo source's feed (RSS or Atom) under `folder`; returns the sources' rows."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for spec in _load("feeds.yaml")["sources"]:
        feed = FeedGenerator()
        feed.id(f"{GUID_PREFIX}feed:{spec['name']}")
        feed.title(spec["title"])
        feed.link(href=spec["site"], rel="alternate")
        feed.description(spec["title"])
        feed.language(spec["language"])
        feed.updated(now)
        # feedgen puts entries first-in-last-out unless told to append.
        for entry in spec["entries"]:
            published = demo_date(entry["days_ago"], now, zone)
            item = feed.add_entry(order="append")
            item.id(f"{GUID_PREFIX}{entry['id']}")
            item.guid(f"{GUID_PREFIX}{entry['id']}", permalink=False)
            item.title(entry["title"])
            item.link(href=f"{spec['site']}/#{entry['id']}")
            item.description(entry["summary"])
            item.published(published)
            item.updated(published)
            for term in entry.get("categories", []):
                item.category(term=term)
        path = folder / f"{spec['name']}.xml"
        if spec["format"] == "atom":
            feed.atom_file(str(path), pretty=True)
        else:
            feed.rss_file(str(path), pretty=True)
        sources.append(
            {
                "name": spec["name"],
                "url": path.resolve().as_uri(),
                "kind": spec["kind"],
                "language": spec["language"],
                "public": spec.get("public", True),
                "tags": {key: [str(v) for v in values] for key, values in spec["tags"].items()},
            }
        )
    return sources


def write_entries(folder: Path, *, now: datetime, zone: ZoneInfo) -> list[Path]:
    """Write each demo editorial entry as Markdown with front matter under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in _load("entries.yaml")["entries"]:
        meta: dict[str, Any] = {
            "kind": spec["kind"],
            "title": spec["title"],
            "date": demo_date(spec["days_ago"], now, zone).isoformat(),
            "language": spec["language"],
            "guid": f"{GUID_PREFIX}{spec['id']}",
            "link": f"https://partners.diffusion.example.org/demo/{spec['id']}",
            "public": spec.get("public", True),
            "summary": spec["summary"],
            "tags": {key: [str(v) for v in values] for key, values in spec["tags"].items()},
        }
        if spec.get("translations"):
            meta["translations"] = spec["translations"]
        post = frontmatter.Post(spec["body"], **meta)
        path = folder / f"{spec['id']}.md"
        path.write_text(frontmatter.dumps(post, allow_unicode=True) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def _store_sources(session: Session, rows: list[dict[str, Any]]) -> None:
    """Create or update the demo sources by name, so a second run reuses them."""
    for row in rows:
        source = session.exec(select(Source).where(Source.name == row["name"])).first()
        if source is None:
            session.add(Source(**row))
            continue
        for key, value in row.items():
            setattr(source, key, value)
        session.add(source)
    session.flush()


def _require_clean(report: ImportReport) -> None:
    if report.problems or report.warnings:
        lines = report.problems + report.warnings
        raise InvalidInput("the bundled demo data has bad rows: " + "; ".join(lines))


def _count(session: Session, model: type[Any]) -> int:
    return int(session.exec(select(sa.func.count()).select_from(model)).one())


def load_demo(
    engine: Engine, settings: Settings, *, rules: RoutingRules, now: datetime
) -> DemoSummary:
    """Load the directory and subscribers, write and collect the feeds, import the entries.

    Everything is keyed (slugs, codes, addresses, source names, guids), so running it again
    updates the demo in place instead of duplicating it.
    """
    zone = settings.zone
    demo_dir = settings.var_dir / "demo"
    source_rows = write_feeds(demo_dir / "feeds", now=now, zone=zone)
    entries_dir = demo_dir / "entries"
    write_entries(entries_dir, now=now, zone=zone)
    with db.session_scope(engine) as session:
        directory = import_directory(session, DATA / "directory.yaml", now=now)
        _require_clean(directory)
        subscribers = import_subscribers(
            session,
            DATA / "subscribers.csv",
            now=now,
            secret=settings.signing_keys(),
            rules=rules,
        )
        _require_clean(subscribers)
        _store_sources(session, source_rows)
        entries = editorial.import_entries(session, entries_dir, now=now)
        _require_clean(entries)
    names = [row["name"] for row in source_rows]
    collection = run_collection(engine, settings, now=now, names=names)
    if collection.failed:
        raise InvalidInput(
            "demo feeds could not be collected: "
            + "; ".join(f"{result.name}: {result.error}" for result in collection.failed)
        )
    summary = DemoSummary(directory, subscribers, entries, collection, sources=names)
    with db.session_scope(engine) as session:
        summary.organisations = _count(session, Organisation)
        summary.field_offices = _count(session, FieldOffice)
        summary.focal_points = _count(session, FocalPoint)
        summary.forums = _count(session, Forum)
        pairs = session.exec(select(Item.kind, Item.language)).all()
        summary.items = dict(sorted(Counter((kind, lang) for kind, lang in pairs).items()))
        audiences = session.exec(select(Subscription.audience)).all()
        summary.audiences = dict(sorted(Counter(audiences).items()))
    return summary
