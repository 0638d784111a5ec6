"""The schedule on a fixed clock, catching up on missed runs once, and the jobs commands."""

import logging
import mailbox
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from diffusion import db, schedule
from diffusion.cli import cli
from diffusion.config import Settings, load_settings
from diffusion.deliver.enqueue import enqueue
from diffusion.errors import ConfigError, InvalidInput, UnknownRecord
from diffusion.models import JobRun
from diffusion.runtime import Runtime
from diffusion.subscriptions import add_subscriber
from tests import digest_dataset
from tests.people import RULES
from tests.smtpserver import make_edition


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def paris(tmp_path: Path, sqlite_url: str) -> Settings:
    return load_settings(
        home=tmp_path,
        database_url=sqlite_url,
        timezone="Europe/Paris",
        secret_key="s-for-signing-links-0123456789ab",
    )


def test_default_jobs_collect_hourly_send_and_build_editions(paris: Settings) -> None:
    jobs = {job.name: job for job in schedule.jobs(paris)}
    assert list(jobs) == ["collect", "monthly", "weekly", "send", "purge"]
    assert jobs["collect"].when == "every 60 min"
    assert jobs["monthly"].takes_period and not jobs["collect"].takes_period
    quiet = paris.replace(schedule_collect_minutes=0, schedule_retry_minutes=0)
    assert [job.name for job in schedule.jobs(quiet)] == ["monthly", "weekly", "purge"]


def test_monthly_newsletter_is_the_first_monday_at_nine_across_daylight_saving(
    paris: Settings,
) -> None:
    monthly = schedule.job_named(paris, "monthly")
    fired = schedule.fire_times(monthly.trigger, _utc(2026, 10, 1), _utc(2027, 4, 30))
    # 09:00 in Paris: 07:00 UTC in summer time, 08:00 UTC in winter time.
    assert fired == [
        _utc(2026, 10, 5, 7),
        _utc(2026, 11, 2, 8),  # after the change of 25 October 2026
        _utc(2026, 12, 7, 8),
        _utc(2027, 1, 4, 8),
        _utc(2027, 2, 1, 8),
        _utc(2027, 3, 1, 8),
        _utc(2027, 4, 5, 7),  # after the change of 28 March 2027
    ]
    assert all(moment.astimezone(paris.zone).hour == 9 for moment in fired)
    assert all(moment.astimezone(paris.zone).weekday() == 0 for moment in fired)
    assert schedule.next_run(monthly, _utc(2026, 11, 2, 8, 0, 1)) == _utc(2026, 12, 7, 8)


def test_the_newsletter_covers_the_past_month_and_the_digest_the_past_week(
    paris: Settings,
) -> None:
    assert schedule.previous_month(_utc(2026, 11, 2, 8), paris) == "2026-10"
    assert schedule.previous_month(_utc(2027, 1, 4, 8), paris) == "2026-12"
    # 00:30 on 1 December in Paris is still 30 November in UTC: the zone decides.
    assert schedule.previous_month(_utc(2026, 11, 30, 23, 30), paris) == "2026-11"
    assert schedule.previous_week(_utc(2026, 11, 23, 8), paris) == "2026-W47"
    assert schedule.previous_week(_utc(2027, 1, 4, 8), paris) == "2026-W53"


def test_a_missed_run_is_caught_up_once_within_the_grace_period(paris: Settings) -> None:
    monthly = schedule.job_named(paris, "monthly")
    grace = timedelta(hours=12)
    last_month = _utc(2026, 10, 5, 7)
    # Down over the first Monday of November, back at 10:30 in Paris: run it now.
    assert schedule.missed(monthly, last_month, _utc(2026, 11, 2, 9, 30), grace)
    # It ran at 09:00: restarting at 10:30 does not run it a second time.
    assert not schedule.missed(monthly, _utc(2026, 11, 2, 8, 0, 2), _utc(2026, 11, 2, 9, 30), grace)
    # Back only the next day, beyond the grace period: wait for December instead.
    assert not schedule.missed(monthly, last_month, _utc(2026, 11, 3, 9), grace)
    # Three weekly runs missed in a long outage with a long grace: caught up by one run.
    weekly = schedule.job_named(paris, "weekly")
    assert schedule.missed(weekly, _utc(2026, 11, 2, 8), _utc(2026, 11, 24), timedelta(days=30))
    collect = schedule.job_named(paris, "collect")
    assert schedule.missed(collect, _utc(2026, 11, 2, 6), _utc(2026, 11, 2, 8), grace)
    assert not schedule.missed(collect, _utc(2026, 11, 2, 7, 30), _utc(2026, 11, 2, 8), grace)
    assert schedule.missed(collect, None, _utc(2026, 11, 2, 8), grace)


def _wait_for(condition: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("the scheduled job did not run")


def test_a_restarted_scheduler_runs_the_missed_job_once_then_waits(
    paris: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    an_hour_ago = (now - timedelta(hours=1)).astimezone(paris.zone)
    settings = paris.replace(schedule_monthly=f"{an_hour_ago.minute} {an_hour_ago.hour} * * *")
    engine = db.engine_for(settings)
    with db.session_scope(engine) as session:
        session.add(JobRun(name="monthly", last_started_at=now - timedelta(days=2)))
    caplog.set_level(logging.INFO, logger="diffusion.schedule")

    scheduler = schedule.make_scheduler(Runtime(settings, engine=engine), now=now, only=["monthly"])
    scheduler.start()
    try:
        _wait_for(lambda: schedule.last_runs(engine)["monthly"].last_finished_at is not None)
        next_time = scheduler.get_job("monthly").next_run_time
    finally:
        scheduler.shutdown(wait=True)
    runs = [r for r in caplog.records if r.getMessage().startswith("job monthly:")]
    assert len(runs) == 1, [r.getMessage() for r in runs]
    assert "period" in runs[0].getMessage()
    assert next_time > now + timedelta(hours=20)  # the next one is tomorrow's, not another now
    recorded = schedule.last_runs(engine)["monthly"]
    assert recorded.last_started_at is not None and recorded.last_started_at >= now

    # A second restart just after: nothing was missed any more, nothing runs now.
    again = schedule.make_scheduler(
        Runtime(settings, engine=engine), now=datetime.now(UTC), only=["monthly"]
    )
    again.start(paused=True)
    try:
        assert again.get_job("monthly").next_run_time > now + timedelta(hours=20)
    finally:
        again.shutdown(wait=False)
    engine.dispose()


def test_schedules_are_checked_when_settings_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="schedule_monthly"):
        load_settings(home=tmp_path, schedule_monthly="first monday")
    with pytest.raises(ConfigError, match="schedule_weekly"):
        load_settings(home=tmp_path, schedule_weekly="0 25 * * mon")


def test_unknown_job_and_period_on_a_job_without_one(paris: Settings) -> None:
    engine = db.engine_for(paris)
    with pytest.raises(UnknownRecord, match="collect, monthly, weekly, send"):
        schedule.run_job("nightly", Runtime(paris, engine=engine), now=_utc(2026, 11, 2, 8))
    with pytest.raises(UnknownRecord, match="takes no period"):
        schedule.run_job(
            "send", Runtime(paris, engine=engine), now=_utc(2026, 11, 2, 8), period="2026-10"
        )
    engine.dispose()


def test_jobs_commands(paris: Settings, sqlite_url: str) -> None:
    runner = CliRunner()
    base = ["--home", str(paris.home), "--database-url", sqlite_url]
    listed = runner.invoke(cli, [*base, "jobs", "list"])
    assert listed.exit_code == 0, listed.output
    for name in ("collect", "monthly", "weekly", "send"):
        assert name in listed.output
    ran = runner.invoke(cli, [*base, "jobs", "run", "monthly", "--period", "2026-10"])
    assert ran.exit_code == 0, ran.output
    assert "period 2026-10" in ran.output
    assert "monthly" in runner.invoke(cli, [*base, "jobs", "list"]).output
    shown = runner.invoke(cli, [*base, "status", "--format", "table"])
    assert shown.exit_code == 0, shown.output
    assert "Outbox" in shown.output and "queued" in shown.output
    both = runner.invoke(cli, [*base, "serve", "--no-web", "--no-scheduler"])
    assert both.exit_code == 2


def _maildir_count(settings: Settings) -> int:
    if not settings.outbox_dir.exists():
        return 0
    return len(mailbox.Maildir(settings.outbox_dir, create=False))


def test_with_approval_editions_wait_as_drafts_until_approved(
    settings: Settings, engine: Engine
) -> None:
    settings = settings.replace(require_approval=True)
    digest_dataset.store(engine)
    with db.session_scope(engine) as session:
        for number, audience in enumerate(("public", "public", "liaison_committee")):
            add_subscriber(
                session,
                email=f"editor{number}@example.org",
                audience=audience,
                now=digest_dataset.NOW,
                rules=RULES,
            )
    now = _utc(2026, 12, 7, 8)
    summary = schedule.run_job(
        "monthly", Runtime(settings, engine=engine), now=now, period="2026-11"
    )
    assert "2 (2 draft)" in summary
    assert _maildir_count(settings) == 0
    schedule.run_job("send", Runtime(settings, engine=engine), now=now)
    assert _maildir_count(settings) == 0  # the scheduler sends approved editions only

    runner = CliRunner()
    env = {
        "DIFFUSION_REQUIRE_APPROVAL": "true",
        "DIFFUSION_SECRET_KEY": "k-for-signing-links-0123456789ab",
    }
    base = ["--home", str(settings.home), "--database-url", settings.database]
    with engine.connect() as connection:
        ids = sorted(connection.execute(sa.text("SELECT id FROM editions")).scalars())
    one = runner.invoke(cli, [*base, "digest", "approve", str(ids[0])], env=env)
    assert one.exit_code == 0 and f"Approved 1 edition(s): {ids[0]}" in one.output, one.output
    twice = runner.invoke(cli, [*base, "digest", "approve", str(ids[0])], env=env)
    assert isinstance(twice.exception, InvalidInput) and "not a draft" in str(twice.exception)
    missing = runner.invoke(cli, [*base, "digest", "approve", "999999"], env=env)
    assert isinstance(missing.exception, UnknownRecord)
    other_period = runner.invoke(
        cli, [*base, "digest", "approve", "--all", "--period", "2026-10"], env=env
    )
    assert "No draft to approve" in other_period.output
    rest = runner.invoke(cli, [*base, "digest", "approve", "--all", "--period", "2026-11"], env=env)
    assert f"Approved 1 edition(s): {ids[1]}" in rest.output, rest.output
    assert runner.invoke(cli, [*base, "digest", "approve"], env=env).exit_code == 2

    schedule.run_job("send", Runtime(settings, engine=engine), now=now)
    assert _maildir_count(settings) == 3


DSN = b"""From: MAILER-DAEMON@mx.example.net
To: bounces@diffusion.example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

The mail system could not deliver your message.
--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 no such user

--b1--
"""


def test_bounces_job_reads_the_configured_maildir(paris: Settings) -> None:
    assert "bounces" not in [job.name for job in schedule.jobs(paris)]
    folder = paris.home / "bounces"
    mailbox.Maildir(folder, create=True).add(DSN)
    settings = paris.replace(bounce_maildir=folder)
    assert schedule.job_named(settings, "bounces").when == "every 30 min"
    engine = db.engine_for(settings)
    with db.session_scope(engine) as session:
        gone = add_subscriber(
            session, email="gone@example.org", audience="public", now=_utc(2026, 1, 1), rules=RULES
        )
        # A bounce counts for someone we have mailed: the edition went out to them.
        edition = make_edition(session, audience="public")
        enqueue(session, edition, [gone], settings, now=_utc(2026, 11, 1))
    summary = schedule.run_job(
        "bounces", Runtime(settings, engine=engine), now=_utc(2026, 11, 2, 8)
    )
    assert "1 hard" in summary
    with engine.connect() as connection:
        status = connection.execute(
            sa.text("SELECT status FROM people WHERE email = 'gone@example.org'")
        ).scalar()
    assert status == "bounced"
    engine.dispose()
