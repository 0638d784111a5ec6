"""Benchmark: `diffusion serve --no-scheduler`: health, feeds' 304s, pages, one-click unsubscribes.

Run: .venv/bin/python benchmarks/bench_web.py [--subscribers 2000] [--concurrency 20]
       [--database-url URL]
The server runs in its own process, the client here; prints rates and latencies, asserts nothing.
"""

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from diffusion import db
from diffusion.config import Settings, load_settings
from diffusion.models import Edition, Person, Subscription
from diffusion.tokens import make_token

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
DIFFUSION = str(Path(sys.executable).with_name("diffusion"))


def seed(settings: Settings, count: int) -> list[int]:
    engine = db.engine_for(settings)
    with db.session_scope(engine) as session:
        people = [
            Person(
                email=f"reader{n}@example.org",
                language="fr" if n % 3 == 0 else "en",
                status_changed_at=NOW,
                created_at=NOW,
            )
            for n in range(count)
        ]
        session.add_all(people)
        session.flush()
        ids = [person.id for person in people if person.id is not None]
        session.add_all(
            Subscription(person_id=i, audience="public", status_changed_at=NOW, created_at=NOW)
            for i in ids
        )
    with db.session_scope(engine) as session:
        # Sent editions of the size real ones have: the archive list must not load their HTML.
        session.add_all(
            Edition(
                segment=f"public|{'fr' if n % 2 else 'en'}|monthly"
                + (f"|sectors={'ED' if n % 4 < 2 else 'SC'}" if n % 3 == 0 else ""),
                audience="public",
                language="fr" if n % 2 else "en",
                period=f"{2010 + n // 12}-{n % 12 + 1:02d}",
                subject=f"Newsletter {n}",
                html="<p>" + "x" * 50_000 + "</p>",
                status="sent",
                sent_at=NOW,
                created_at=NOW,
            )
            for n in range(200)
        )
    engine.dispose()
    feed = settings.feeds_dir / "public.en.atom"
    feed.parent.mkdir(parents=True, exist_ok=True)
    entry = (
        "<entry><title>Literacy circles in Dhaka</title><summary>"
        + "x" * 800
        + "</summary></entry>"
    )
    feed.write_text(
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">' + entry * 200 + "</feed>"
    )
    return ids


def serve(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DIFFUSION_HOME": str(settings.home),
        "DIFFUSION_DATABASE_URL": settings.database,
        "DIFFUSION_SECRET_KEY": "bench-for-signing-links-0123456789",
    }
    command = [DIFFUSION, "serve", "--no-scheduler", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            return process, base
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError("diffusion serve did not start") from None
            time.sleep(0.1)


async def measure(
    name: str,
    count: int,
    concurrency: int,
    request: Callable[[httpx.AsyncClient, int], Coroutine[Any, Any, httpx.Response]],
    expect: int,
) -> None:
    latencies: list[float] = []
    wrong = 0
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        timeout=60, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def one(number: int) -> None:
            nonlocal wrong
            async with gate:
                started = time.perf_counter()
                response = await request(client, number)
                latencies.append(time.perf_counter() - started)
                wrong += response.status_code != expect

        started = time.perf_counter()
        await asyncio.gather(*(one(number) for number in range(count)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        f"{name:<34} {count:>6} requests  {count / elapsed:>8.0f}/s  "
        f"p50 {statistics.median(latencies) * 1000:6.1f} ms  "
        f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:6.1f} ms"
        + (f"  ({wrong} unexpected answers)" if wrong else "")
    )


async def run(base: str, settings: Settings, ids: list[int], concurrency: int) -> None:
    secret = settings.signing_key()
    async with httpx.AsyncClient() as client:
        etag = (await client.get(f"{base}/feeds/public.en.atom")).headers["etag"]
    await measure("GET /healthz", 2000, concurrency, lambda c, n: c.get(f"{base}/healthz"), 200)
    await measure(
        "GET feed, If-None-Match -> 304",
        2000,
        concurrency,
        lambda c, n: c.get(f"{base}/feeds/public.en.atom", headers={"If-None-Match": etag}),
        304,
    )
    await measure(
        "GET feed (200 KB)",
        1000,
        concurrency,
        lambda c, n: c.get(f"{base}/feeds/public.en.atom"),
        200,
    )
    await measure("GET / (subscribe page)", 2000, concurrency, lambda c, n: c.get(f"{base}/"), 200)
    await measure(
        "GET /archive/ (200 editions)",
        500,
        concurrency,
        lambda c, n: c.get(f"{base}/archive/"),
        200,
    )
    tokens = [make_token(secret, "unsubscribe", subscriber_id) for subscriber_id in ids]
    await measure(
        "POST one-click unsubscribe",
        len(tokens),
        concurrency,
        lambda c, n: c.post(
            f"{base}/unsubscribe/{tokens[n]}", data={"List-Unsubscribe": "One-Click"}
        ),
        200,
    )


# The ceiling for serving a feed: a bare Starlette app answering the same bytes from memory.
BARE_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
body = open(sys.argv[2], "rb").read()
async def feed(request):
    return Response(body, media_type="application/atom+xml; charset=utf-8")
app = Starlette(routes=[Route("/feed", feed)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def bare(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    feed = str(settings.feeds_dir / "public.en.atom")
    command = [sys.executable, "-c", BARE_APP, str(port), feed]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            httpx.get(f"{base}/feed", timeout=2)
            return process, base
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError("the bare Starlette app did not start") from None
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = args.database_url or f"sqlite:///{home / 'var' / 'diffusion.db'}"
        db.upgrade(url)
        settings = load_settings(
            home=home, database_url=url, secret_key="bench-for-signing-links-0123456789"
        )
        ids = seed(settings, args.subscribers)
        process, base = serve(settings)
        print(
            f"diffusion serve (uvicorn, one process), {url.split(':')[0]}, "
            f"{args.concurrency} clients"
        )
        try:
            asyncio.run(run(base, settings, ids, args.concurrency))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        ceiling, bare_base = bare(settings)
        print("bare Starlette app (uvicorn, one process), the same feed bytes from memory")
        try:
            asyncio.run(
                measure(
                    "GET feed (200 KB), bare app",
                    1000,
                    args.concurrency,
                    lambda c, n: c.get(f"{bare_base}/feed"),
                    200,
                )
            )
        finally:
            ceiling.send_signal(signal.SIGTERM)
            ceiling.wait(30)


if __name__ == "__main__":
    main()
