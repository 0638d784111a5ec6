"""Benchmark: import a large directory and subscriber list, then import them again (upserts).

Run: .venv/bin/python benchmarks/bench_imports.py [--organisations 2000] [--subscribers 20000]
     [--database-url URL]
Prints figures; asserts nothing about durations.
"""

import argparse
import csv
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from diffusion import db
from diffusion.collect.directories import import_directory
from diffusion.models import AUDIENCES, SECTORS
from diffusion.rows import ImportReport
from diffusion.subscriptions import import_subscribers

COUNTRIES = ["BD", "NP", "VN", "KE", "IN", "CO", "SN", "FR", "DE", "BR", "EG", "PE", "MA", "FJ"]
THEMES = ["literacy", "inclusion", "climate-action", "heritage", "open-science", "youth"]
NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)


def write_files(folder: Path, organisations: int, subscribers: int, rng: random.Random) -> None:
    with (folder / "ngos.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["slug", "name", "sectors", "themes", "countries", "contact_email"])
        for n in range(organisations):
            writer.writerow(
                [
                    f"ngo-{n}",
                    f"NGO number {n}",
                    ";".join(rng.sample(list(SECTORS), 2)),
                    ";".join(rng.sample(THEMES, 2)),
                    ";".join(rng.sample(COUNTRIES, 3)),
                    f"contact@ngo-{n}.example.org",
                ]
            )
    with (folder / "offices.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["code", "name", "city", "country", "countries"])
        for country in COUNTRIES:
            writer.writerow(
                [f"office-{country.lower()}", f"Office {country}", "City", country, country]
            )
    with (folder / "subscribers.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "language", "audience", "key", "sectors", "cadence"])
        for n in range(subscribers):
            audience = rng.choice(AUDIENCES)
            key = {
                "ngo": f"ngo-{rng.randrange(organisations)}",
                "sector": rng.choice(list(SECTORS)),
                "field_office": f"office-{rng.choice(COUNTRIES).lower()}",
                "member_state": rng.choice(COUNTRIES),
                "national_commission": rng.choice(COUNTRIES),
            }.get(audience, "")
            sectors = rng.choice(["", "", "", rng.choice(list(SECTORS))])
            cadence = rng.choice(["monthly"] * 4 + ["weekly"])
            writer.writerow(
                [f"person{n}@example.org", f"Person {n}", rng.choice(["en", "fr"]), audience]
                + [key, sectors, cadence]
            )


def timed(label: str, rows: int, run: Callable[[], ImportReport]) -> None:
    start = time.perf_counter()
    report = run()
    elapsed = time.perf_counter() - start
    print(
        f"  {label:<28} {rows:>7} rows {elapsed:7.2f} s {rows / elapsed:9.0f} rows/s  "
        f"(created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
        f"problems {len(report.problems)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--organisations", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
        db.upgrade(url)
        engine = db.make_engine(url)
        write_files(folder, args.organisations, args.subscribers, random.Random(7))
        print(f"database: {engine.url.render_as_string(hide_password=True)}")
        for round_name in ("first import", "re-import"):
            print(round_name)
            for name, rows, importer in (
                ("ngos.csv", args.organisations, import_directory),
                ("offices.csv", len(COUNTRIES), import_directory),
                ("subscribers.csv", args.subscribers, partial(import_subscribers, secret="bench")),
            ):

                def run(
                    path: Path = folder / name, importer: Callable[..., ImportReport] = importer
                ) -> ImportReport:
                    with db.session_scope(engine) as session:
                        return importer(session, path, now=NOW)

                timed(name, rows, run)
        engine.dispose()


if __name__ == "__main__":
    main()
