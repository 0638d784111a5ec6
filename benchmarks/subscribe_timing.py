"""Benchmark: does the subscribe answer's timing tell a known address from an unknown one?

Run: .venv/bin/python benchmarks/subscribe_timing.py [--rounds 200] [--database-url URL]
(a database of its own: the schema is created in it)
Against `diffusion serve --no-scheduler` in its own process: known (active) and unknown
addresses are subscribed in alternation; prints the median and quartiles of each, and their
difference, asserts nothing.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from diffusion import db
from diffusion.models import Person, Subscription

DIFFUSION = str(Path(sys.executable).with_name("diffusion"))
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY = "benchmark-key-of-at-least-32-bytes-long"
NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = args.database_url or f"sqlite:///{home / 'var' / 'diffusion.db'}"
        db.upgrade(url)
        engine = db.make_engine(url)
        with db.session_scope(engine) as session:
            for n in range(args.rounds):
                person = Person(email=f"known{n}@example.org", status="active", consent_at=NOW)
                session.add(person)
                session.flush()
                session.add(Subscription(person_id=person.id or 0, audience="public"))
        engine.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFUSION_")}
        env.update(
            DIFFUSION_HOME=str(home),
            DIFFUSION_DATABASE_URL=url,
            DIFFUSION_SECRET_KEY=KEY,
            DIFFUSION_SUBSCRIBE_LIMIT_PER_CLIENT=str(10 * args.rounds),
        )
        process = subprocess.Popen(
            [DIFFUSION, "serve", "--no-scheduler", "--port", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            found = LISTENING.search(line)
            if found:
                port = int(found.group(1))
                break
        assert port is not None
        try:
            times: dict[str, list[float]] = {"known": [], "unknown": []}
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=60) as client:
                token = CSRF.search(client.get("/").text).group(1)  # type: ignore[union-attr]
                cookies = dict(client.cookies)
            for n in range(args.rounds):
                for kind in ("known", "unknown"):
                    form = {"email": f"{kind}{n}@example.org", "csrf_token": token}
                    form["language"] = "en"
                    # A connection per request: the work done after an answer delays the next
                    # request on the same connection, not the answer itself.
                    with httpx.Client(base_url=base, timeout=60, cookies=cookies) as client:
                        started = time.perf_counter()
                        answer = client.post("/subscribe", data=form)
                        times[kind].append(time.perf_counter() - started)
                    assert answer.status_code == 200, answer.text
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    database = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(f"subscribe answers, {args.rounds} of each, {database}:")
    for kind, values in times.items():
        q1, median, q3 = statistics.quantiles(values, n=4)
        spread = f"quartiles {q1 * 1000:.2f}-{q3 * 1000:.2f}"
        print(f"  {kind:8} median {median * 1000:6.2f} ms  ({spread})")
    gap = statistics.median(times["unknown"]) - statistics.median(times["known"])
    print(f"  unknown - known: {gap * 1000:+.2f} ms")


if __name__ == "__main__":
    main()
