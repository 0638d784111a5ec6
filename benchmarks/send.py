"""Benchmark: a full send with outbox bookkeeping against Postfix's smtp-sink, and its ceiling.

    .venv/bin/python benchmarks/send.py                   # 20,000 and 100,000 subscribers
    .venv/bin/python benchmarks/send.py --sizes 2000      # a quick run

For each size, in a fresh process (so that peak memory is the run's own): a SQLite database in a
temporary folder, N subscribers and one edition of realistic size, then `send_pending` over
SMTP. In the same run, the ceiling: raw aiosmtplib sending prepared bytes of the same size over
the same number of connections, two ways: `sendmail` (the issue's ceiling), and the same bytes
written after DATA as they are, as Diffusion writes a message its template made wire-ready
(the client's own speed on that path, so the second ratio is what our bookkeeping costs).
Prints msg/s, both ratios and peak memory.

Then, on PostgreSQL (DIFFUSION_BENCH_POSTGRES_URL, default the local server), 100,000
subscribers sent with 1, 2 and 4 worker processes straight after enqueueing, before the planner
has statistics for the new rows: the case where a claim written `id IN (subquery ... LIMIT ...
SKIP LOCKED)` re-ran its subquery per row and took every row at once.

    .venv/bin/python benchmarks/send.py --sizes 2000 --postgres-size 0   # SQLite only

With --rtt-ms, the sends go through a latency proxy (benchmarks/latencyproxy.py: loopback only, a
bounded number of connections and bytes held) that holds each direction's bytes for half the round
trip in front of smtp-sink: 2,000 recipients (--rtt-size) with 4, 16 and 64 connections
(--rtt-connections), start-up (enqueue, connecting) included, against the one-round-trip-per-message
figure (connections / RTT), against Postfix's `smtp-source` through the same proxy (it does not
pipeline), and against the same send on loopback. Also printed: the rate once started (from a
quarter of the messages answered to nine tenths), the CPU share of the sending process, and how
long it waited for a CPU (the machine's load).

Even pipelined, SMTP costs a connection one round trip a message: the content may only follow the
354 answer to DATA (RFC 2920, 3.1). So 16 connections at 20 ms cannot pass 800 msg/s, below what
one sending process can do on loopback; the 64-connection run shows where the CPU takes over.

    .venv/bin/python benchmarks/send.py --rtt-ms 20
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffusion import db  # noqa: E402
from diffusion.config import Settings, load_settings  # noqa: E402
from diffusion.contracts import Recipient, Segment  # noqa: E402
from diffusion.deliver import MessageTemplate, send_pending  # noqa: E402
from diffusion.deliver.summary import SendSummary  # noqa: E402
from diffusion.models import Edition, Person, Subscription  # noqa: E402

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
POSTGRES = os.environ.get(
    "DIFFUSION_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def edition_body() -> tuple[str, str]:
    """HTML of about 60 KB and text of about 15 KB, like a 30-item monthly digest."""
    item = (
        '<tr><td style="padding:12px 24px;font-family:Arial,sans-serif;font-size:15px;'
        'line-height:22px;color:#1a1a1a"><h2 style="margin:0 0 6px;font-size:18px">'
        '<a href="https://www.ifla.org/news/literacy-circles-{n}" style="color:#0b5cab">'
        'Literacy circles reach 1,200 learners in Dhaka ({n})</a></h2><p style="margin:0">'
        "The International Federation of Library Associations and its partners opened "
        "community reading circles in six districts, with the UNESCO Dhaka Office; "
        "\u00e9t\u00e9 2026, caf\u00e9s litt\u00e9raires.</p></td></tr>\n"
    )
    html = (
        '<!doctype html><html lang="en" dir="ltr"><head><meta charset="utf-8"></head><body>'
        '<table role="presentation" width="100%"><tr><td>[[diffusion:greeting]]</td></tr>\n'
        + "".join(item.format(n=n) for n in range(90))
        + '<tr><td><a href="[[diffusion:preferences_url]]">Preferences</a> \u00b7 '
        '<a href="[[diffusion:unsubscribe_url]]">Unsubscribe</a> \u00b7 '
        "sent to [[diffusion:email]]</td></tr></table></body></html>"
    )
    text = (
        "[[diffusion:greeting]]\n\n"
        + "".join(
            f"* Literacy circles reach 1,200 learners in Dhaka ({n})\n"
            f"  https://www.ifla.org/news/literacy-circles-{n}\n"
            "  The International Federation of Library Associations and its partners opened\n"
            "  community reading circles in six districts.\n\n"
            for n in range(90)
        )
        + "Preferences: [[diffusion:preferences_url]]\n"
        "Unsubscribe: [[diffusion:unsubscribe_url]]\n"
    )
    return html, text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seed(url: str, count: int) -> None:
    engine = db.make_engine(url)
    html, text = edition_body()
    people = Person.__table__  # type: ignore[attr-defined]
    held = Subscription.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        for start in range(0, count, 5000):
            numbers = range(start, min(count, start + 5000))
            connection.execute(
                sa.insert(people),
                [
                    {
                        "id": n + 1,
                        "email": f"reader{n}@bench.example.org",
                        "name": f"Reader {n}",
                        "language": "en",
                        "status": "active",
                        "soft_bounces": 0,
                        "status_changed_at": NOW,
                        "created_at": NOW,
                    }
                    for n in numbers
                ],
            )
            connection.execute(
                sa.insert(held),
                [
                    {
                        "person_id": n + 1,
                        "audience": "liaison_committee",
                        "key": "",
                        "sectors": [],
                        "themes": [],
                        "regions": [],
                        "cadence": "monthly",
                        "status": "active",
                        "status_changed_at": NOW,
                        "created_at": NOW,
                    }
                    for n in numbers
                ],
            )
    with db.session_scope(engine) as session:
        session.add(
            Edition(
                segment=Segment("liaison_committee").id,
                audience="liaison_committee",
                period="2026-11",
                subject="NGO partners' newsletter, November 2026",
                html=html,
                text=text,
                status="approved",
                item_count=90,
            )
        )
    engine.dispose()


async def ceiling(port: int, connections: int, count: int, data: bytes, as_is: bool) -> float:
    """msg/s of raw aiosmtplib sending prepared bytes over `connections` connections.

    as_is=False: `sendmail`, whose DATA rewrites line ends and doubles leading dots in every
    message. as_is=True: MAIL, RCPT, DATA and the bytes written as they are, as Diffusion sends
    a message its template has made wire-ready: the fastest this client can go.
    """
    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=port) for _ in range(connections)]
    for client in clients:
        await client.connect()
    remaining = iter(range(count))
    sender = "newsletter@bench.example.org"

    async def work(client: aiosmtplib.SMTP) -> None:
        for n in remaining:
            if not as_is:
                await client.sendmail(sender, [f"r{n}@bench.example.org"], data)
                continue
            await client.mail(sender)
            await client.rcpt(f"r{n}@bench.example.org")
            assert (await client.execute_command(b"DATA")).code == 354
            assert client.protocol is not None
            client.protocol.write(data)
            client.protocol.write(b".\r\n")
            assert (await client.protocol.read_response(timeout=client.timeout)).code == 250

    started = time.perf_counter()
    await asyncio.gather(*(work(client) for client in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.quit()
    return count / elapsed


def sqlite_home(folder: Path, count: int, port: int, connections: int) -> Settings:
    """A SQLite database of `count` subscribers in `folder`, and settings to send via `port`."""
    url = f"sqlite:///{folder / 'bench.db'}"
    db.upgrade(url)
    seed(url, count)
    return load_settings(
        home=folder,
        database_url=url,
        secret_key="bench-for-signing-links-0123456789",
        smtp_url=f"smtp://127.0.0.1:{port}",
        smtp_connections=connections,
    )


def child(count: int, port: int, connections: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="diffusion-bench-"))
    try:
        settings = sqlite_home(folder, count, port, connections)
        engine = db.engine_for(settings)
        with db.session_scope(engine) as session:
            edition = session.get(Edition, 1)
            assert edition is not None
            subscriber = session.get(Person, 1)
            assert subscriber is not None
            sample = MessageTemplate.from_edition(edition, settings, now=NOW).personalise(
                Recipient.of(subscriber)
            )
        # The machine's load changes: measure the ceilings before and after, and use the means.
        n = min(count, 20000)
        before = [asyncio.run(ceiling(port, connections, n, sample, as_is)) for as_is in (0, 1)]
        started = time.perf_counter()
        summary = send_pending(engine, settings, now=NOW)
        elapsed = time.perf_counter() - started
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        after = [asyncio.run(ceiling(port, connections, n, sample, as_is)) for as_is in (1, 0)]
        after.reverse()
        print(
            json.dumps(
                {
                    "count": count,
                    "sent": summary.sent,
                    "seconds": elapsed,
                    "rate": summary.sent / elapsed,
                    "sendmail": (before[0] + after[0]) / 2,
                    "sendmail_range": [before[0], after[0]],
                    "as_is": (before[1] + after[1]) / 2,
                    "as_is_range": [before[1], after[1]],
                    "peak_mb": peak_kb / 1024,
                    "message_bytes": len(sample),
                }
            )
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def postgres_child(count: int, port: int, connections: int, workers: int) -> None:
    """One PostgreSQL send: a fresh database, N subscribers, enqueue and send with `workers`."""
    import psycopg  # here: the SQLite runs' peak memory stays their own

    admin = sa.engine.make_url(db.normalise_url(POSTGRES))
    name = f"diffusion_bench_{os.getpid()}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    folder = Path(tempfile.mkdtemp(prefix="diffusion-bench-"))
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        db.upgrade(url)
        seed(url, count)
        settings = load_settings(
            home=folder,
            database_url=url,
            secret_key="bench-for-signing-links-0123456789",
            smtp_url=f"smtp://127.0.0.1:{port}",
            smtp_connections=connections,
        )
        engine = db.engine_for(settings)
        started = time.perf_counter()
        # Enqueueing is part of the run: the claims that follow see no statistics on its rows.
        summary = send_pending(engine, settings, now=NOW, workers=workers)
        elapsed = time.perf_counter() - started
        with engine.connect() as connection:
            sent = connection.execute(
                sa.text("SELECT count(*) FROM outbox WHERE state = 'sent'")
            ).scalar_one()
        engine.dispose()
        print(
            json.dumps(
                {"count": count, "workers": workers, "sent": sent, "seconds": elapsed,
                 "rate": sent / elapsed, "deferred": summary.deferred}
            )
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_runs(port: int, size: int, connections: int) -> None:
    import psycopg

    try:
        psycopg.connect(
            sa.engine.make_url(db.normalise_url(POSTGRES))
            .set(drivername="postgresql")
            .render_as_string(hide_password=False),
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL run skipped: {exc}".strip())
        return
    for workers in (1, 2, 4):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size), "--port", str(port),
             "--connections", str(connections), "--postgres-workers", str(workers)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        result = json.loads(out.strip().splitlines()[-1])
        print(
            f"PostgreSQL, {result['count']} subscribers, {workers} worker(s) x {connections} "
            f"connections, right after enqueueing: {result['sent']} sent in "
            f"{result['seconds']:.1f} s = {result['rate']:.0f} msg/s "
            f"({result['deferred']} deferred)",
            flush=True,
        )


def runqueue_seconds() -> float:
    """Seconds this process has waited for a CPU while runnable (Linux): the machine's load."""
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy() -> tuple[int, int]:
    """The machine's CPU time so far, busy and in all, in clock ticks (Linux /proc/stat)."""
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def latency_child(count: int, port: int, connections: int) -> None:
    """One send of `count` recipients through `port`, timed from the call: start-up included."""
    folder = Path(tempfile.mkdtemp(prefix="diffusion-bench-"))
    marks: list[tuple[float, int]] = []
    try:
        settings = sqlite_home(folder, count, port, connections)
        engine = db.engine_for(settings)

        def progress(summary: SendSummary) -> None:
            marks.append((time.perf_counter(), summary.sent))

        cpu, started, queued = time.process_time(), time.perf_counter(), runqueue_seconds()
        busy = machine_busy()
        summary = send_pending(engine, settings, now=NOW, progress=progress)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        queued = runqueue_seconds() - queued
        busy_after = machine_busy()
        machine = (busy_after[0] - busy[0]) / max(busy_after[1] - busy[1], 1)
        # Once started: from a quarter of the messages answered to nine tenths.
        first = next(mark for mark in marks if mark[1] >= count // 4)
        last = next(mark for mark in marks if mark[1] >= count * 9 // 10)
        steady = (last[1] - first[1]) / max(last[0] - first[0], 1e-6)
        print(
            json.dumps(
                {
                    "sent": summary.sent,
                    "seconds": elapsed,
                    "steady": steady,
                    "cpu": cpu / elapsed,
                    "queued": queued,
                    "machine": machine,
                }
            )
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def smtp_source(port: int, connections: int, count: int, size: int) -> float:
    """msg/s of Postfix's smtp-source: `connections` sessions, each reused (-d), one command at
    a time (it does not pipeline)."""
    started = time.perf_counter()
    subprocess.run(
        [SOURCE, "-d", "-s", str(connections), "-m", str(count), "-l", str(size),
         "-f", "newsletter@bench.example.org", "-t", "reader@bench.example.org",
         f"127.0.0.1:{port}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return count / (time.perf_counter() - started)


def latency_runs(sink_port: int, rtt_ms: float, count: int, counts: list[int]) -> None:
    proxy = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("latencyproxy.py")), str(sink_port),
         str(rtt_ms)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proxy.stdout is not None
        port = int(proxy.stdout.readline())
        size = len(edition_body()[0]) + len(edition_body()[1])
        print(f"through a proxy adding {rtt_ms:g} ms a round trip, {count} recipients:")
        for connections in counts:
            runs = {}
            for where, target in (("proxy", port), ("loopback", sink_port)):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(count), "--port", str(target),
                     "--connections", str(connections), "--latency-child"],
                    check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                runs[where] = json.loads(out.strip().splitlines()[-1])
            result, local = runs["proxy"], runs["loopback"]
            rate = result["sent"] / result["seconds"]
            one_trip = connections / (rtt_ms / 1000)
            source = smtp_source(port, connections, min(count, 1000), size)
            print(
                f"  {connections:>2} connections: {result['sent']} sent in "
                f"{result['seconds']:.1f} s = {rate:.0f} msg/s, {result['steady']:.0f} msg/s "
                f"once started (CPU {result['cpu']:.0%} of the run, {result['queued']:.1f} s "
                f"waiting for a CPU; the machine's {os.cpu_count()} CPUs busy "
                f"{result['machine']:.0%})\n"
                f"      one round trip a message: {one_trip:.0f} msg/s -> ratio "
                f"{rate / one_trip:.2f}, once started {result['steady'] / one_trip:.2f}\n"
                f"      smtp-source: {source:.0f} msg/s -> ratio {rate / source:.2f}\n"
                f"      the same send on loopback: {local['sent'] / local['seconds']:.0f} msg/s, "
                f"{local['steady']:.0f} once started (CPU {local['cpu']:.0%}, "
                f"{local['queued']:.1f} s waiting for a CPU, machine {local['machine']:.0%}) "
                f"-> ratio "
                f"{rate / (local['sent'] / local['seconds']):.2f}",
                flush=True,
            )
    finally:
        proxy.terminate()
        proxy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000", help="Subscriber counts.")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections.")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--postgres-workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--latency-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--rtt-ms", type=float, help="Send through a proxy adding this round trip, not loopback."
    )
    parser.add_argument("--rtt-size", type=int, default=2000, help="Recipients of --rtt-ms runs.")
    parser.add_argument(
        "--rtt-connections", default="4,16,64", help="Connection counts of --rtt-ms runs."
    )
    parser.add_argument(
        "--postgres-size", type=int, default=100_000, help="PostgreSQL run's subscribers; 0: none."
    )
    args = parser.parse_args()
    if args.child and args.latency_child:
        latency_child(args.child, args.port, args.connections)
        return
    if args.child and args.postgres_workers:
        postgres_child(args.child, args.port, args.connections, args.postgres_workers)
        return
    if args.child:
        child(args.child, args.port, args.connections)
        return
    if not Path(SINK).exists():
        sys.exit(f"{SINK} not found: install Debian's postfix package")
    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "root", f"127.0.0.1:{port}", "1000"])
    try:
        time.sleep(0.5)
        if args.rtt_ms:
            counts = [int(value) for value in args.rtt_connections.split(",")]
            latency_runs(port, args.rtt_ms, args.rtt_size, counts)
            return
        results = []
        for size in (int(value) for value in args.sizes.split(",")):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(size), "--port", str(port),
                 "--connections", str(args.connections)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            result = json.loads(out.strip().splitlines()[-1])
            results.append(result)
            rate = result["rate"]
            print(
                f"{result['count']:>7} subscribers: {result['sent']} sent in "
                f"{result['seconds']:.1f} s = {rate:.0f} msg/s, peak memory "
                f"{result['peak_mb']:.0f} MB; raw aiosmtplib, {args.connections} connections, "
                f"{result['message_bytes']}-byte messages:\n"
                f"    ceiling, sendmail: {result['sendmail']:.0f} msg/s "
                f"(before {result['sendmail_range'][0]:.0f}, after "
                f"{result['sendmail_range'][1]:.0f}) -> ratio {rate / result['sendmail']:.2f}\n"
                f"    ceiling, bytes written as they are: {result['as_is']:.0f} msg/s "
                f"(before {result['as_is_range'][0]:.0f}, after {result['as_is_range'][1]:.0f})"
                f" -> ratio {rate / result['as_is']:.2f}",
                flush=True,
            )
        if len(results) > 1:
            growth = results[-1]["peak_mb"] / results[0]["peak_mb"] - 1
            print(f"peak memory, {results[-1]['count']} vs {results[0]['count']}: {growth:+.1%}")
        if args.postgres_size:
            postgres_runs(port, args.postgres_size, args.connections)
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
