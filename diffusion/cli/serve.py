"""Commands that run the service: serve, the scheduled jobs, its status, and approval."""

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

import click
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from diffusion import db, render, schedule
from diffusion.cli.base import PERIOD, Context, cli, console, parse_now, pass_context
from diffusion.cli.output import Column, Listing, emit, emit_sections, format_option, resolve
from diffusion.config import Settings
from diffusion.status import service_status

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """One line per job run and per send summary on stderr; APScheduler only says what fails."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the schema check is not news


@cli.command()
@click.option("--host", help="Address to listen on (default: web_host, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: web_port, 8080).")
@click.option("--no-scheduler", is_flag=True, help="Serve the web pages only.")
@click.option("--no-web", is_flag=True, help="Run the scheduled jobs only.")
@pass_context
def serve(
    ctx: Context, host: str | None, port: int | None, no_scheduler: bool, no_web: bool
) -> None:
    """Run the service: the scheduled jobs and the web pages, in one process.

    Several processes may share one PostgreSQL database: editions and messages are claimed
    in the database, so each subscriber still gets each edition once.

    \b
    Example:
      diffusion serve --host 0.0.0.0 --port 8080
      diffusion serve --no-web          # a second sender on the same database
    """
    ctx.require_keys()  # it signs links: a bad key stops it here, naming its source
    if no_scheduler and no_web:
        raise click.UsageError("--no-scheduler and --no-web together leave nothing to run")
    settings = ctx.settings
    if not no_scheduler:
        settings.require_sending_ready()  # the scheduler's jobs send through SMTP
    setup_logging()
    ctx.require_schema()
    # A broken email template fails here, naming file and line, before any job can run.
    render.check_templates(settings)
    scheduler = None
    if not no_scheduler:
        scheduler = schedule.make_scheduler(ctx.runtime, now=datetime.now(UTC))
        scheduler.start()
        for job in scheduler.get_jobs():
            logging.getLogger("diffusion.schedule").info(
                "job %s: next run %s", job.id, job.next_run_time
            )
    stop = threading.Event()

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # Uvicorn handles the signals while it runs, then raises them again for the handler found
    # before it: this one, so that the scheduler below is shut down cleanly (exit status 0).
    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    try:
        if no_web:
            stop.wait()
        else:
            from diffusion.web import create_app, server

            server.run(
                create_app(ctx.runtime),
                settings,
                host=host or settings.web.host,
                port=settings.web.port if port is None else port,
            )
    finally:
        if scheduler is not None:
            schedule.STOP.set()  # a send in progress stops claiming; the rest stays queued
            scheduler.shutdown(wait=True)


@cli.group("jobs")
def jobs_group() -> None:
    """The scheduled jobs: when they run next, and running one now."""


def _jobs_listing(settings: Settings, engine: Engine, now: datetime) -> Listing:
    runs = schedule.last_runs(engine)
    listing = Listing(
        [
            Column("job"),
            Column("when", wrap=True),
            Column("next run"),
            Column("last run"),
            Column("outcome", wrap=True),
        ],
        title="Jobs",
    )
    for job in schedule.jobs(settings):
        last = runs.get(job.name)
        next_at = schedule.next_run(job, now)
        if last and last.last_started_at and isinstance(job.trigger, IntervalTrigger):
            next_at = max(now, last.last_started_at + job.trigger.interval)
        listing.add(
            job.name,
            job.when,
            _local(next_at, settings),
            _local(last.last_started_at if last else None, settings),
            last.last_outcome if last else "",
        )
    return listing


def _local(moment: datetime | None, settings: Settings) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M %Z")


@jobs_group.command("list")
@format_option
@click.option("--now", hidden=True, help="Pretend it is this ISO date-time (for tests).")
@pass_context
def jobs_list(ctx: Context, fmt: str | None, now: str | None) -> None:
    """Show the configured jobs, their next run time and their last run.

    \b
    Example:
      diffusion jobs list
      diffusion jobs list --format json
    """
    engine = ctx.engine
    emit(_jobs_listing(ctx.settings, engine, parse_now(now)), fmt, console)


@jobs_group.command("run")
@click.argument("name")
@click.option(
    "--period", type=PERIOD, help="Period of the monthly (YYYY-MM) or weekly (YYYY-Www) job."
)
@pass_context
def jobs_run(ctx: Context, name: str, period: str | None) -> None:
    """Run one job now (collect, monthly, weekly, send), as the scheduler would.

    Without --period the monthly job builds the past month and the weekly job the past week.
    Running it twice, or in two processes at once, sends each subscriber one message.

    \b
    Example:
      diffusion jobs run collect
      diffusion jobs run monthly --period 2026-10
    """
    ctx.require_keys()  # it signs links: a bad key stops it here, naming its source
    if name in ("monthly", "weekly", "send"):
        ctx.settings.require_sending_ready()
    setup_logging()
    ctx.require_schema()
    summary = schedule.run_job(name, ctx.runtime, now=datetime.now(UTC), period=period)
    console.print(f"{name}: {summary}")


@cli.command()
@format_option
@click.option("--now", hidden=True, help="Pretend it is this ISO date-time (for tests).")
@pass_context
def status(ctx: Context, fmt: str | None, now: str | None) -> None:
    """Show the last collection of each source, the next job runs and the outbox.

    In a pipe (tsv, csv) the three listings follow each other, a blank line between them;
    JSON gives one object with `sources`, `jobs`, `outbox` and `drafts`.

    \b
    Example:
      diffusion status
      diffusion status --format json
    """
    settings = ctx.settings
    engine = ctx.engine
    moment = parse_now(now)
    with db.session_scope(engine) as session:
        found = service_status(session)
    collected = Listing(
        [
            Column("source"),
            Column("last fetched"),
            Column("HTTP", numeric=True),
            Column("new items", numeric=True),
            Column("error", wrap=True),
        ],
        title="Sources",
    )
    for source in found.sources:
        collected.add(
            source.name,
            _local(source.last_fetched_at, settings),
            source.last_status,
            source.last_new_items,
            source.last_error or "",
        )
    box = Listing([Column("state"), Column("messages", numeric=True)], title="Outbox")
    for state in ("queued", "sending", "sent", "failed_temporary", "failed_permanent"):
        box.add(state, found.outbox.get(state, 0))
    jobs = _jobs_listing(settings, engine, moment)
    sections = {"sources": collected, "jobs": jobs, "outbox": box}
    drafts, gone = found.drafts, found.gone
    emit_sections(sections, fmt, console, counts={"drafts": drafts, **gone})
    if resolve(fmt) == "table":
        console.print(f"Editions waiting for approval: {drafts}")
        console.print(
            f"Not mailed any more: {gone['bounced']} bounced, "
            f"{gone['complained']} complained (spam reports), "
            f"{gone['unsubscribed']} unsubscribed"
        )
