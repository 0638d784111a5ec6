"""The scheduler's jobs: one-line calls into the stages, timed by the settings."""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from diffusion import db, subscriptions
from diffusion.bounces.process import process_bounces
from diffusion.collect import run_collection
from diffusion.config import Settings
from diffusion.contracts import Period
from diffusion.deliver import send_pending
from diffusion.deliver.feeds import build_feeds
from diffusion.editions import build_editions
from diffusion.errors import DiffusionError, InvalidInput, UnknownRecord
from diffusion.models import JobRun
from diffusion.runtime import Runtime

log = logging.getLogger("diffusion.schedule")
# Set when the service stops: a send in progress stops claiming, and what it has not claimed
# stays queued for the next run (of this process or another).
STOP = threading.Event()

# What a job does, given the engine, the settings, the time and an optional period label;
# it returns a one-line summary for the log and for `diffusion status`.
JobFunction = Callable[[Runtime, datetime, str | None], str]


@dataclass(frozen=True)
class Job:
    """One scheduled job: its name, what it is for, when it runs, and the stage it calls."""

    name: str
    description: str
    trigger: BaseTrigger
    function: JobFunction
    when: str  # for people: "every 60 min" or the crontab spec
    takes_period: bool = False
    cadence: str | None = None  # the kind of period it takes: monthly or weekly


def previous_month(now: datetime, settings: Settings) -> str:
    """The label of the month before the one `now` falls in: the monthly newsletter's period."""
    local = now.astimezone(settings.zone)
    last_day = local.replace(day=1) - timedelta(days=1)
    return Period.containing(last_day, "monthly", settings.zone).label


def previous_week(now: datetime, settings: Settings) -> str:
    """The label of the ISO week before the one `now` falls in: the weekly digest's period."""
    return Period.containing(now - timedelta(days=7), "weekly", settings.zone).label


def _summary(result: Any) -> str:
    """A stage's result in a few words: its counts, or the number of things it did."""
    summary = getattr(result, "summary", None)
    if callable(summary):
        return str(summary())
    if isinstance(result, list | tuple):
        if not result:
            return "none"
        statuses = Counter(str(getattr(one, "status", "done")) for one in result)
        return f"{len(result)} ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))})"
    counts = []
    for name in ("new", "updated", "sent", "deferred", "failed", "skipped", "editions_sent"):
        value = getattr(result, name, None)
        if isinstance(value, list):
            value = len(value)
        if isinstance(value, int):
            counts.append(f"{value} {name.replace('_', ' ')}")
    return ", ".join(counts) if counts else str(result)


def _collect(runtime: Runtime, now: datetime, _period: str | None) -> str:
    engine, settings = runtime.engine, runtime.settings
    collected = run_collection(engine, settings, now=now)
    feeds = build_feeds(engine, settings, rules=runtime.rules, out=settings.feeds_dir, now=now)
    return f"collection: {_summary(collected)}; feeds: {_summary(feeds)}"


def _edition_job(cadence: str) -> JobFunction:
    def run(runtime: Runtime, now: datetime, period: str | None) -> str:
        engine, settings = runtime.engine, runtime.settings
        label = period or (previous_month if cadence == "monthly" else previous_week)(now, settings)
        built = build_editions(engine, settings, rules=runtime.rules, now=now, period=label)
        # Drafts wait for `diffusion digest approve`; send_pending only takes approved editions.
        sent = send_pending(engine, settings, now=now, stop_event=STOP)
        return f"period {label}: editions: {_summary(built)}; sending: {_summary(sent)}"

    return run


def _send(runtime: Runtime, now: datetime, _period: str | None) -> str:
    sent = send_pending(runtime.engine, runtime.settings, now=now, stop_event=STOP)
    return f"sending: {_summary(sent)}"


def _bounces(runtime: Runtime, now: datetime, _period: str | None) -> str:
    return process_bounces(runtime.engine, runtime.settings, now=now).summary()


def _purge(runtime: Runtime, now: datetime, _period: str | None) -> str:
    settings = runtime.settings
    with db.session_scope(runtime.engine) as session:
        count = subscriptions.purge_pending(
            session,
            older_than=timedelta(days=settings.subscribe.pending_purge_days),
            now=now,
        )
    return f"purged {count} subscription request(s) never confirmed"


def jobs(settings: Settings) -> list[Job]:
    """The jobs the settings ask for; a job whose interval is 0 is left out."""
    zone = settings.zone
    found: list[Job] = []

    def every(minutes: int) -> IntervalTrigger:
        return IntervalTrigger(minutes=minutes, timezone=zone)

    if settings.schedule.collect_minutes:
        found.append(
            Job(
                "collect",
                "collect every source, then rebuild the feeds",
                every(settings.schedule.collect_minutes),
                _collect,
                f"every {settings.schedule.collect_minutes} min",
            )
        )
    found.append(
        Job(
            "monthly",
            "build the monthly newsletter of the past month and send the approved editions",
            CronTrigger.from_crontab(settings.schedule.monthly, timezone=zone),
            _edition_job("monthly"),
            f"cron {settings.schedule.monthly}",
            takes_period=True,
            cadence="monthly",
        )
    )
    found.append(
        Job(
            "weekly",
            "build the weekly digests of the past week and send the approved editions",
            CronTrigger.from_crontab(settings.schedule.weekly, timezone=zone),
            _edition_job("weekly"),
            f"cron {settings.schedule.weekly}",
            takes_period=True,
            cadence="weekly",
        )
    )
    if settings.schedule.retry_minutes:
        found.append(
            Job(
                "send",
                "send approved editions (after approval) and retry temporary failures",
                every(settings.schedule.retry_minutes),
                _send,
                f"every {settings.schedule.retry_minutes} min",
            )
        )
    if settings.schedule.bounces_minutes and (settings.bounces.mailbox or settings.bounces.maildir):
        found.append(
            Job(
                "bounces",
                "read bounces, complaints and emailed unsubscribes in the bounce mailbox",
                every(settings.schedule.bounces_minutes),
                _bounces,
                f"every {settings.schedule.bounces_minutes} min",
            )
        )
    found.append(
        Job(
            "purge",
            f"remove requests never confirmed after {settings.subscribe.pending_purge_days} days",
            CronTrigger.from_crontab("17 3 * * *", timezone=zone),
            _purge,
            "daily at 03:17",
        )
    )
    return found


def job_named(settings: Settings, name: str) -> Job:
    for job in jobs(settings):
        if job.name == name:
            return job
    known = ", ".join(job.name for job in jobs(settings))
    raise UnknownRecord(f"job {name!r}: no such job; the configured jobs are {known}")


def fire_times(trigger: BaseTrigger, start: datetime, end: datetime) -> list[datetime]:
    """The times a trigger fires in (start, end]; for a cron trigger, a pure calendar sum."""
    times: list[datetime] = []
    moment = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
    while moment is not None and moment <= end:
        times.append(moment)
        moment = trigger.get_next_fire_time(moment, moment + timedelta(microseconds=1))
    return times


def next_run(job: Job, now: datetime) -> datetime | None:
    """When the job runs next after `now` (for an interval job: one interval from now)."""
    if isinstance(job.trigger, IntervalTrigger):
        interval: timedelta = job.trigger.interval
        return now + interval
    return cast(datetime | None, job.trigger.get_next_fire_time(None, now))


def missed(job: Job, last_started: datetime | None, now: datetime, grace: timedelta) -> bool:
    """Whether a run was due while no process was running, recently enough to catch up on.

    A cron job catches up when it should have fired within the grace period before `now`
    and has not run since; an interval job when its last run is more than an interval ago.
    Whatever the number of runs missed, the catch-up is one run.
    """
    if isinstance(job.trigger, IntervalTrigger):
        return last_started is None or now - last_started >= job.trigger.interval
    due = fire_times(job.trigger, now - grace, now)
    return bool(due) and (last_started is None or last_started < due[-1])


def last_runs(engine: Engine) -> dict[str, JobRun]:
    with db.session_scope(engine) as session:
        return {run.name: run for run in session.exec(sa.select(JobRun)).scalars()}  # type: ignore[call-overload]


def _record(engine: Engine, name: str, **values: Any) -> None:
    """Insert or update the job's row; two processes may do so at the same moment."""
    statement = db.insert_or_update(engine, JobRun, ["name"], values).values(
        {"name": name, "last_outcome": "", **values}
    )
    with engine.begin() as connection:
        connection.execute(statement)


def run_job(name: str, runtime: Runtime, *, now: datetime, period: str | None = None) -> str:
    """Run one job now, record it in job_runs and log one line; errors propagate."""
    engine, settings = runtime.engine, runtime.settings
    job = job_named(settings, name)
    if period is not None and not job.takes_period:
        raise UnknownRecord(f"job {name!r} takes no period; run it without --period")
    if period is not None and job.cadence:
        given = Period.parse(period, settings.zone)
        if given.cadence != job.cadence:
            example = "2026-11" if job.cadence == "monthly" else "2026-W47"
            raise InvalidInput(
                f"job {name!r} builds {job.cadence} editions; --period {period} is a "
                f"{'week' if given.cadence == 'weekly' else 'month'}, give one like {example}"
            )
    _record(engine, name, last_started_at=now)
    started = time.perf_counter()
    try:
        summary = job.function(runtime, now, period)
    except BaseException as exc:
        outcome = f"failed: {exc}"
        _record(engine, name, last_finished_at=datetime.now(UTC), last_outcome=outcome[:500])
        log.error("job %s %s (%.1f s)", name, outcome, time.perf_counter() - started)
        raise
    _record(engine, name, last_finished_at=datetime.now(UTC), last_outcome=summary[:500])
    log.info("job %s: %s (%.1f s)", name, summary, time.perf_counter() - started)
    return summary


def _scheduled(name: str, runtime: Runtime) -> None:
    """What APScheduler calls: the job at the current time; Diffusion's errors are logged."""
    try:
        run_job(name, runtime, now=datetime.now(UTC))
    except DiffusionError:
        pass  # already logged in one line by run_job; the next run tries again


def make_scheduler(
    runtime: Runtime, *, now: datetime, only: Iterable[str] | None = None
) -> BackgroundScheduler:
    """A scheduler (not started) with the configured jobs, catching up on missed runs once.

    The job store is in memory: which runs are due after a restart is read from job_runs,
    and sending exactly once is the database's business (edition and outbox uniqueness).
    """
    engine, settings = runtime.engine, runtime.settings
    grace = timedelta(hours=settings.schedule.misfire_grace_hours)
    scheduler = BackgroundScheduler(
        timezone=settings.zone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": max(1, int(grace.total_seconds())),
        },
    )
    runs = last_runs(engine)
    wanted = set(only) if only is not None else None
    for job in jobs(settings):
        if wanted is not None and job.name not in wanted:
            continue
        last = runs.get(job.name)
        options: dict[str, Any] = {}
        if missed(job, last.last_started_at if last else None, now, grace):
            options["next_run_time"] = now
            log.info("catching up on job %s: a run was missed while stopped", job.name)
        scheduler.add_job(
            _scheduled,
            job.trigger,
            args=(job.name, runtime),
            id=job.name,
            name=job.description,
            **options,
        )
    return scheduler
