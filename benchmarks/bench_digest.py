"""Benchmark: build and store the editions of many segments, then the feeds, on a synthetic month.

Run: .venv/bin/python benchmarks/bench_digest.py [--items N] [--segments N] [--database-url URL]
Prints figures; asserts nothing about durations.
"""

import argparse
import hashlib
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.collect.directories import ensure_sectors
from diffusion.config import Settings, load_settings
from diffusion.deliver.feeds import build_feeds
from diffusion.editions import build_editions
from diffusion.models import (
    AUDIENCES,
    CONTENT_KINDS,
    SECTORS,
    FieldOffice,
    FocalPoint,
    Forum,
    Item,
    Organisation,
    Person,
    Subscription,
)
from diffusion.select.rules import load_rules

COUNTRIES = ["BD", "KE", "CO", "FJ", "SN", "NP", "IN", "VN", "FR", "DE", "BR", "EG", "PE", "MA"]
THEMES = ["literacy", "inclusion", "climate-action", "heritage", "open-science", "youth"]
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def seed(url: str, n_items: int, n_segments: int, rng: random.Random) -> None:
    engine = db.make_engine(url)
    sectors = list(SECTORS)
    with db.session_scope(engine) as session:
        ensure_sectors(session)
        orgs = [
            Organisation(
                slug=f"ngo{n}",
                name=f"NGO number {n}",
                sectors=rng.sample(sectors, 2),
                themes=rng.sample(THEMES, 2),
                countries=rng.sample(COUNTRIES, 3),
            )
            for n in range(200)
        ]
        offices = [
            FieldOffice(
                code=f"office{n}",
                name=f"Office {n}",
                city="City",
                country=COUNTRIES[n % len(COUNTRIES)],
                countries=rng.sample(COUNTRIES, 3),
            )
            for n in range(30)
        ]
        forums = [
            Forum(slug=f"forum{n}", name=f"Forum {n}", sectors=rng.sample(sectors, 2),
                  countries=rng.sample(COUNTRIES, 2))
            for n in range(10)
        ]  # fmt: skip
        points = [
            FocalPoint(sector_code=code, name=f"Focal {code}", email=f"{code.lower()}@u.example")
            for code in sectors
        ]
        session.add_all([*orgs, *offices, *forums, *points])
        for n in range(n_items):
            session.add(
                Item(
                    kind=rng.choice(CONTENT_KINDS),
                    guid=f"urn:bench:{n}",
                    link=f"https://news.example/{n}",
                    title=f"Update {n} on {rng.choice(THEMES)}",
                    summary="A short summary of what happened. " * 3,
                    body_html="<p>" + "Some body text. " * 20 + "</p>",
                    public=rng.random() > 0.2,
                    published_at=NOW - timedelta(minutes=rng.randrange(0, 29 * 24 * 60)),
                    content_hash=hashlib.sha256(str(n).encode()).hexdigest(),
                    tags={
                        "sectors": rng.sample(sectors, 1),
                        "countries": rng.sample(COUNTRIES, 2),
                        "themes": rng.sample(THEMES, 1),
                        "organisations": [rng.choice(orgs).slug],
                        "field_offices": [rng.choice(offices).code],
                        "forums": [rng.choice(forums).slug] if rng.random() < 0.3 else [],
                    },
                )
            )
        keys = {
            "ngo": [org.slug for org in orgs],
            "sector": sectors,
            "field_office": [office.code for office in offices],
            "member_state": COUNTRIES,
            "national_commission": COUNTRIES,
            "liaison_committee": [""],
            "public": [""],
        }
        seen: set[tuple[str, str, str]] = set()
        while len(seen) < n_segments:
            audience = rng.choice(AUDIENCES)
            seen.add((audience, rng.choice(keys[audience]), rng.choice(["en", "fr"])))
        for number, (audience, key, language) in enumerate(sorted(seen)):
            for copy in range(3):  # three readers a segment
                person = Person(email=f"r{number}.{copy}@example.org", language=language)
                session.add(person)
                session.flush()
                assert person.id is not None
                session.add(Subscription(person_id=person.id, audience=audience, key=key))
    engine.dispose()


def editions(engine: Engine, settings: Settings) -> None:
    start = time.perf_counter()
    results = build_editions(
        engine, settings, rules=load_rules(settings.routing), now=NOW, period="2026-11"
    )
    built = time.perf_counter() - start
    items = sum(result.item_count for result in results)
    print(
        f"build_editions: {len(results)} segments, {items} entries shown, "
        f"{built:.2f} s ({built / max(len(results), 1) * 1000:.1f} ms a segment)"
    )
    start = time.perf_counter()
    again = build_editions(
        engine, settings, rules=load_rules(settings.routing), now=NOW, period="2026-11"
    )
    print(f"build_editions again (all kept): {time.perf_counter() - start:.2f} s, "
          f"{sum(r.action == 'kept' for r in again)} kept")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--segments", type=int, default=300)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--feeds-only", action="store_true", help="skip building the editions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = args.database_url or f"sqlite:///{home / 'var' / 'bench.db'}"
        db.upgrade(url)
        settings = load_settings(
            home=home, database_url=url, secret_key="bench-for-signing-links-0123456789"
        )
        seed(url, args.items, args.segments, random.Random(7))
        engine = db.engine_for(settings)
        if not args.feeds_only:
            editions(engine, settings)
        for run in ("first", "second (no new items)"):
            start = time.perf_counter()
            report = build_feeds(
                engine, settings, rules=load_rules(settings.routing), out=home / "feeds", now=NOW
            )
            print(
                f"build_feeds {run}: {report.summary()}, {report.entries} entries, "
                f"{time.perf_counter() - start:.2f} s"
            )
        engine.dispose()


if __name__ == "__main__":
    main()
