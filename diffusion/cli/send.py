"""Commands that send editions, inspect the outbox and read bounce reports."""

import asyncio
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any, cast

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.bounces.process import process_bounces
from diffusion.cli.base import PERIOD, Context, cli, console, err_console, pass_context
from diffusion.cli.output import Column, Listing, emit, format_option, plain, resolve
from diffusion.config import Settings
from diffusion.contracts import Recipient
from diffusion.deliver import outbox, sender
from diffusion.deliver import status as outbox_report
from diffusion.deliver.enqueue import segment_subscribers
from diffusion.deliver.message import MessageTemplate
from diffusion.deliver.transport import make_transport
from diffusion.editions import build_editions
from diffusion.models import OUTBOX_STATES, Edition


def _columns(*names: str) -> list[Column]:
    """Subjects and segments may wrap (between words, after `|`); periods and counts do not."""
    return [
        Column(
            name,
            wrap=name == "subject",
            joined=name == "segment",
            numeric=name not in ("period", "segment", "subject"),
        )
        for name in names
    ]


def _now() -> datetime:
    return datetime.now(UTC)


def _build(engine: Engine, ctx: Context, period: str | None, audience: str | None) -> None:
    build_editions(
        engine, ctx.settings, rules=ctx.rules, now=_now(), period=period, audience=audience
    )


@contextmanager
def _rehearsal(engine: Engine) -> Iterator[Engine]:
    """The engine's database seen through one transaction that is rolled back at the end."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            # Sessions bound to a connection in a transaction join it: their commits stay in it.
            yield cast(Engine, connection)
        finally:
            transaction.rollback()


def _print_dry_run(editions: list[Edition], counts: list[tuple[int, int]], fmt: str | None) -> None:
    listing = Listing(
        _columns("edition", "period", "recipients", "already sent", "segment", "subject")
    )
    for edition, (people, done) in zip(editions, counts, strict=True):
        listing.add(edition.id, edition.period, people, done, edition.segment, edition.subject)
    emit(listing, fmt, console)
    err_console.print("Dry run: nothing was sent, and nothing was approved or queued.")


def _recipient_count(engine: Engine, edition: Edition) -> tuple[int, int]:
    """(subscribers of the segment, of whom already sent)."""
    with db.session_scope(engine) as session:
        people = sum(1 for _ in segment_subscribers(session, edition))
        done = outbox.counts(session, [edition.id or 0]).get(edition.id or 0, {})
    return people, done.get("sent", 0)


async def _send_tests(settings: Settings, editions: list[Edition], address: str) -> list[str]:
    transport = make_transport(settings, connections=1)
    lines = []
    try:
        for edition in editions:
            template = MessageTemplate.from_edition(edition, settings, now=_now())
            # id 0: the reader of a test copy is nobody's subscription, its links lead nowhere
            recipient = Recipient(0, address, "", edition.language)
            message_id = f"<test.{outbox.worker_name().replace(':', '.')}.{edition.id}@x>"
            message_id = message_id.replace("@x>", f"@{template.domain}>")
            data = template.personalise(recipient, message_id)
            outcome = (
                await transport.deliver(template.sender, [address], data, relay=template.relay)
            )[address]
            lines.append(
                f"edition {edition.id} ({edition.segment}): {outcome.kind} {outcome.reply}"
            )
    finally:
        await transport.close()
    return lines


@cli.command()
@click.option("--period", type=PERIOD, help="Only editions of this period (2026-11, 2026-W47).")
@click.option("--audience", help="Only editions of this audience (ngo, sector...).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Messages a second.")
@click.option("--resume", is_flag=True, help="Only finish editions already being sent.")
@click.option(
    "--wait-retries",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Keep waiting for deferred messages due within this many seconds.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send nothing.")
@click.option("--test-to", metavar="EMAIL", help="Send one copy of each edition to EMAIL only.")
@format_option
@pass_context
def send(
    ctx: Context,
    period: str | None,
    audience: str | None,
    workers: int,
    rate: float | None,
    resume: bool,
    wait_retries: float,
    dry_run: bool,
    test_to: str | None,
    fmt: str | None,
) -> None:
    """Send the approved editions to their subscribers, through SMTP or the maildir.

    Builds the period's editions first (when the digest builder is installed), queues each
    approved edition for its segment's active subscribers, then delivers. Safe to interrupt
    (SIGTERM finishes what is in flight) and to run again: nobody gets an edition twice.

    \b
    Example:
      diffusion send --period 2026-11 --dry-run
      diffusion send --period 2026-11 --test-to editor@example.org
      diffusion send --period 2026-11 --workers 2 --rate 50
      diffusion send --resume
    """
    ctx.require_keys()  # it signs links: a bad key stops it here, naming its source
    settings = ctx.settings
    if rate:
        settings = settings.replace(rate_per_second=rate)
    if period is None and not resume:
        from diffusion.select.periods import default_periods_said

        err_console.print(default_periods_said(_now(), settings))
    if dry_run or test_to:
        # Built and looked at inside a transaction that is rolled back: a rehearsal approves
        # nothing and queues nothing that the scheduler's next send job could send for real.
        with _rehearsal(ctx.engine) as engine:
            if not resume:
                _build(engine, ctx, period, audience)
            editions = sender.pending_editions(
                engine, period=period, audience=audience, resume_only=resume
            )
            counts = [_recipient_count(engine, edition) for edition in editions]
        if not editions:
            console.print("Nothing to send: no edition" + (f" for {period}" if period else ""))
        elif dry_run:
            _print_dry_run(editions, counts, fmt)
        else:
            assert test_to is not None
            for line in asyncio.run(_send_tests(settings, editions, test_to)):
                console.print(plain(line))  # quotes the relay's reply
        return
    settings.require_sending_ready()  # before anything is built, queued or sent
    engine = ctx.engine
    if not resume:
        _build(engine, ctx, period, audience)
    editions = sender.pending_editions(engine, period=period, audience=audience, resume_only=resume)
    if not editions:
        console.print("Nothing to send: no approved edition" + (f" for {period}" if period else ""))
        return

    now = _now()
    sender.enqueue_editions(engine, settings, editions, now=now)
    ids = [edition.id for edition in editions if edition.id is not None]
    with db.session_scope(engine) as session:
        before = outbox.counts(session, ids)
    total = sum(n for states in before.values() for s, n in states.items() if s != "sent")

    stop = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stop.set()  # stop claiming; what is in flight is finished and recorded

    previous = signal.signal(signal.SIGTERM, on_term)
    previous_int = signal.signal(signal.SIGINT, on_term)  # Ctrl-C: the same graceful stop
    try:
        with Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("send", total=total)

            def progress(summary: sender.SendSummary) -> None:
                bar.update(task, completed=summary.processed)

            summary = sender.send_pending(
                engine,
                settings,
                now=now,
                edition_ids=ids,
                workers=workers,
                stop_event=stop,
                progress=progress,
                retry_within=wait_retries,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    if not summary.database_down:
        _print_summary(engine, ids, summary, fmt)
    _print_reasons(summary)
    for relay in summary.held_back:  # the rest went out; these wait for their relay
        err_console.print(plain(summary.relay_down(relay)), soft_wrap=True)
    if summary.halted:
        # sys.exit, not click's Exit: cli.main runs click in non-standalone mode.
        err_console.print(plain(summary.halted), soft_wrap=True)
        sys.exit(1)
    if stop.is_set():
        console.print("Stopped on request; run `diffusion send --resume` to finish.")
    elif summary.held_back:
        sys.exit(1)
    elif summary.reasons and not summary.sent:
        err_console.print("nothing could be delivered")
        sys.exit(1)


def _print_reasons(summary: sender.SendSummary) -> None:
    """Each distinct reason a message was deferred, failed or put back, with its count."""
    for reason, count in sorted(summary.reasons.items(), key=lambda pair: -pair[1]):
        console.print(plain(f"  {count} x {reason}"), soft_wrap=True)


def _print_summary(
    engine: Engine, ids: list[int], summary: sender.SendSummary, fmt: str | None
) -> None:
    with db.session_scope(engine) as session:
        states = outbox.counts(session, ids)
    listing = Listing(_columns("edition", "sent", "deferred", "failed", "queued"))
    for edition_id in ids:
        found = states.get(edition_id, {})
        listing.add(
            edition_id,
            found.get("sent", 0),
            found.get("failed_temporary", 0),
            found.get("failed_permanent", 0),
            found.get("queued", 0) + found.get("sending", 0),
        )
    emit(listing, fmt, console)
    console.print(f"This run: {summary.summary()}.")


@cli.group("outbox")
def outbox_group() -> None:
    """The outbox: one row per edition and subscriber."""


@outbox_group.command("status")
@format_option
@pass_context
def outbox_status(ctx: Context, fmt: str | None) -> None:
    """Count the outbox rows per state, per edition, with the latest errors of each.

    \b
    Example:
      diffusion outbox status
      diffusion outbox status | grep ngo:ifla
      diffusion outbox status --format json
    """
    with db.session_scope(ctx.engine) as session:
        editions = outbox_report.outbox_status(session)
    rows: list[dict[str, Any]] = [
        {
            "edition": edition.edition,
            "segment": edition.segment,
            "period": edition.period,
            **edition.states,
            "last_errors": [
                {"error": error, "messages": number} for error, number in edition.last_errors
            ],
        }
        for edition in editions
    ]
    short = {"failed_temporary": "deferred", "failed_permanent": "failed"}
    listing = Listing(
        _columns("edition", "period", *(short.get(s, s) for s in OUTBOX_STATES), "segment"),
        records=rows,
    )
    for row in rows:
        listing.add(
            row["edition"],
            row["period"] or "?",
            *(row[state] for state in OUTBOX_STATES),
            row["segment"] or "?",
        )
    emit(listing, fmt, console)
    if resolve(fmt) == "json":
        return  # the errors are in each row's last_errors
    # The reasons, whole: an operator needs the relay's exact words (in a pipe, on stderr).
    notes = console if resolve(fmt) == "table" else err_console
    for edition in editions:
        for error, number in edition.last_errors:
            notes.print(plain(f"edition {edition.edition}: {number} x {error}"), soft_wrap=True)


@outbox_group.command("retry")
@pass_context
def outbox_retry(ctx: Context) -> None:
    """Put the deferred (failed_temporary) messages back in the queue, due now.

    \b
    Example:
      diffusion outbox retry && diffusion send --resume
    """
    engine = ctx.engine
    with db.session_scope(engine) as session:
        count = outbox.retry_now(session, now=_now())
    console.print(f"{count} deferred messages queued again.")


@cli.group("bounces")
def bounces_group() -> None:
    """Delivery status notifications (bounces)."""


@bounces_group.command("process")
@click.argument("source", required=False)
@click.option("--verbose", "-v", is_flag=True, help="Say what each report was, or why skipped.")
@pass_context
def bounces_process(ctx: Context, source: str | None, verbose: bool) -> None:
    """Read bounces, complaints and emailed unsubscribes; stop mailing those they name.

    SOURCE is a maildir, an mbox or imaps://user@host/INBOX (password in
    DIFFUSION_BOUNCE_IMAP_PASSWORD); default: the bounce_mailbox setting.

    \b
    Example:
      diffusion bounces process /var/mail/bounces/
      diffusion bounces process --verbose bounces.mbox
      diffusion bounces process imaps://bounces@mail.example.org/INBOX
    """
    engine = ctx.engine
    report = process_bounces(engine, ctx.settings, now=_now(), path=source)
    console.print(plain(report.summary()))
    for line in report.lines if verbose else report.problems:
        console.print(plain(f"  {line}"))
