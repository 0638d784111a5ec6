"""Benchmark of collection: concurrent conditional fetching against feedparser one feed at a time.

Serves N feeds of M entries from a local threaded HTTP server in its own process, each answer
delayed by --delay-ms, and times on a fresh SQLite data directory:
  1. the first pass of run_collection (fetch, parse, sanitise, store),
  2. the second pass (every source must answer 304, with no body sent),
  3. the same feeds parsed one after another with feedparser.parse(url) (the baseline).

    .venv/bin/python benchmarks/collect.py --feeds 200 --entries 50 --delay-ms 100
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import feedparser
from sqlmodel import select

from diffusion import db
from diffusion.collect import run_collection
from diffusion.collect.fetch import FeedSource, fetch_feeds
from diffusion.config import Settings, load_settings
from diffusion.models import Item, Source

ROOT = Path(__file__).resolve().parent.parent


def _stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats") as answer:
        return dict(json.load(answer))


async def _fetch_only(urls: list[str], settings: Settings, *, etags: bool = False) -> float:
    """The time the fetching alone takes: the limit a pass cannot beat."""
    sources = [
        FeedSource(id=n, name=f"ngo-{n}", url=url, kind="ngo_action",
                   etag=f'"v1-{n}"' if etags else None)
        for n, url in enumerate(urls)
    ]  # fmt: skip
    started = time.perf_counter()
    async for _result in fetch_feeds(
        sources,
        fetch_timeout=settings.collect.fetch_timeout,
        concurrency=settings.collect.fetch_concurrency,
        user_agent=settings.collect.user_agent,
    ):
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--feeds", type=int, default=200, help="Number of feeds served.")
    parser.add_argument("--entries", type=int, default=50, help="Entries in each feed.")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="Server delay per request.")
    parser.add_argument("--concurrency", type=int, default=None, help="fetch_concurrency.")
    parser.add_argument(
        "--workers", type=int, default=None, help="Parsing processes (default: run_collection's)."
    )
    arguments = parser.parse_args()

    load = os.getloadavg()  # other work on the machine skews the figures: say how much
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "feedserver.py"),
            f"--feeds={arguments.feeds}",
            f"--entries={arguments.entries}",
            f"--delay-ms={arguments.delay_ms}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        urls = [f"http://127.0.0.1:{port}/feed/{n}.xml" for n in range(arguments.feeds)]
        with tempfile.TemporaryDirectory() as home:
            settings = load_settings(home=home, fetch_concurrency=arguments.concurrency)
            db.upgrade(settings.database)
            engine = db.engine_for(settings)
            with db.session_scope(engine) as session:
                for number, url in enumerate(urls):
                    session.add(Source(name=f"ngo-{number}", url=url, kind="ngo_action"))
            now = datetime.now(UTC)

            started = time.perf_counter()
            first = run_collection(engine, settings, now=now, workers=arguments.workers)
            first_time = time.perf_counter() - started
            with db.session_scope(engine) as session:
                stored = len(session.exec(select(Item.id)).all())
            expected = arguments.feeds * arguments.entries
            assert not first.failed, first.failed[:3]
            assert stored == expected, f"{stored} items stored, {expected} expected"

            before = _stats(port)
            started = time.perf_counter()
            second = run_collection(engine, settings, now=now, workers=arguments.workers)
            second_time = time.perf_counter() - started
            after = _stats(port)
            unchanged = sum(result.status == "not_modified" for result in second.results)
            bodies = after["bodies"] - before["bodies"]
            assert unchanged == arguments.feeds, f"{unchanged} of {arguments.feeds} answered 304"
            assert bodies == 0, f"{bodies} bodies sent on the second pass"
            engine.dispose()

        fetch_only = asyncio.run(_fetch_only(urls, settings))
        no_body = asyncio.run(_fetch_only(urls, settings, etags=True))
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("diffusion")), "--help"],
                       check=True, capture_output=True)  # fmt: skip
        start_up = time.perf_counter() - started
        started = time.perf_counter()
        parsed = sum(len(feedparser.parse(url).entries) for url in urls)
        baseline_time = time.perf_counter() - started
        assert parsed == expected, f"baseline parsed {parsed} entries"
    finally:
        server.terminate()
        server.wait()

    print(
        f"{arguments.feeds} feeds x {arguments.entries} entries, "
        f"{arguments.delay_ms:g} ms server delay, "
        f"concurrency {settings.collect.fetch_concurrency}, "
        f"load average before/after {load[0]:.2f}/{os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    print(f"first pass (fetch, parse, sanitise, store): {first_time:8.2f} s  ({stored} items)")
    print(
        f"second pass (conditional GET):              {second_time:8.2f} s  "
        f"({unchanged} x 304, {bodies} bodies received)"
    )
    print(f"fetch only (the bodies, nothing parsed):    {fetch_only:8.2f} s")
    print(f"fetch only, every answer 304:               {no_body:8.2f} s")
    print(f"start-up (`diffusion --help`):              {start_up:8.2f} s")
    print(
        f"first pass / (fetch only + start-up):       "
        f"{(first_time + start_up) / (fetch_only + start_up):8.2f} x  (run as a command)"
    )
    print(f"baseline feedparser.parse(url), in turn:    {baseline_time:8.2f} s")
    print(f"ratio baseline / first pass:                {baseline_time / first_time:8.1f} x")


if __name__ == "__main__":
    main()
