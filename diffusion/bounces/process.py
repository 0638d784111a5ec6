"""Reading a mailbox of returned mail: recognise each report, apply its events, count it once."""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from diffusion import db
from diffusion.bounces.apply import Applied, apply
from diffusion.bounces.dsn import one_line
from diffusion.bounces.events import Event
from diffusion.bounces.recognise import recognise
from diffusion.bounces.sources import open_source
from diffusion.config import Settings
from diffusion.errors import InvalidInput
from diffusion.models import BounceReportRead

KINDS = ("hard", "soft", "delay", "complaint", "unsubscribe", "auto_reply", "not_bounce")


@dataclass
class BounceReport:
    """What reading a mailbox (or a webhook's events) did."""

    source: str
    reports: int = 0  # messages that reported something about a recipient
    already_read: int = 0  # reports an earlier run counted (an mbox keeps them)
    kinds: dict[str, int] = field(default_factory=dict)
    unmatched: int = 0  # counted events naming no one we have mailed
    marked: dict[str, list[str]] = field(default_factory=dict)  # status -> addresses
    lines: list[str] = field(default_factory=list)  # per report: what, or why skipped
    problems: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return self.kinds.get(kind, 0)

    @property
    def bounced(self) -> list[str]:
        return self.marked.get("bounced", [])

    def record(self, where: str, done: list[Applied]) -> None:
        for applied in done:
            event = applied.event
            self.kinds[event.kind] = self.kinds.get(event.kind, 0) + 1
            if applied.marked and applied.email:
                self.marked.setdefault(applied.marked, []).append(applied.email)
            if event.kind in ("hard", "soft", "complaint", "unsubscribe") and not applied.email:
                self.unmatched += 1
            self.lines.append(f"{where}: {describe(applied)}")

    def add(self, other: "BounceReport") -> None:
        self.reports += other.reports
        self.already_read += other.already_read
        for kind, number in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + number
        self.unmatched += other.unmatched
        for status, addresses in other.marked.items():
            self.marked.setdefault(status, []).extend(addresses)
        self.lines += other.lines
        self.problems += other.problems

    def summary(self) -> str:
        earlier = f" ({self.already_read} read before, skipped)" if self.already_read else ""
        marked = ", ".join(f"{len(v)} {k}" for k, v in sorted(self.marked.items())) or "none"
        return (
            f"{self.source}: {self.reports} reports{earlier}; {self.count('hard')} hard and "
            f"{self.count('soft')} soft bounces, {self.count('delay')} delays, "
            f"{self.count('complaint')} complaints, {self.count('unsubscribe')} unsubscribes, "
            f"{self.count('auto_reply')} auto-replies, {self.unmatched} unmatched; "
            f"marked: {marked}"
        )


def describe(applied: Applied) -> str:
    event = applied.event
    who = applied.email or event.address or "nobody of ours"
    how = f" (by {applied.how})" if applied.how else ""
    result = f" -> {applied.marked}" if applied.marked else ""
    note = f"; {applied.note}" if applied.note else ""
    return f"{event.kind} for {who}{how} via {event.via}: {event.why}{result}{note}"


def report_key(raw: bytes, message: Message) -> str:
    """What identifies a report across runs: its Message-ID, or its bytes when it has none."""
    message_id = one_line(message["Message-ID"])
    return hashlib.sha256(message_id.encode() if message_id else raw).hexdigest()


def apply_once(
    engine: Engine,
    key: str,
    events: list[Event],
    settings: Settings,
    report: BounceReport,
    where: str,
    *,
    now: datetime,
) -> None:
    """Apply the events of one report in one transaction with its key: counted once or not."""
    done: list[Applied] = []
    try:
        with db.session_scope(engine) as session:
            if session.get(BounceReportRead, key) is not None:
                report.already_read += 1
                return
            done = _apply_all(session, events, settings, now)
            session.add(BounceReportRead(key=key, read_at=now))
    except IntegrityError:  # another run read it at the same moment; its changes stand
        report.already_read += 1
        return
    report.reports += 1
    report.record(where, done)


def _apply_all(
    session: Session, events: list[Event], settings: Settings, now: datetime
) -> list[Applied]:
    return [apply(session, event, settings, now=now) for event in events]


def process_bounces(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    path: Path | str | None = None,
) -> BounceReport:
    """Read every new message at `path` (default: bounce_mailbox, else bounce_maildir)."""
    where = path or settings.bounces.mailbox or settings.bounces.maildir
    if where is None:
        raise InvalidInput(
            "no bounce mailbox: give a PATH or imaps:// address, or set bounce_mailbox"
        )
    source = open_source(where, settings)
    report = BounceReport(source.name)
    secret = settings.signing_keys()  # every key in use verifies
    try:
        for key, raw in source.unread():
            message = message_from_bytes(raw, policy=policy.compat32)
            name = f"{source.name}/{key}"
            try:
                recognised = recognise(message, settings, secret)
            except (ValueError, LookupError, TypeError, AttributeError, UnicodeError) as exc:
                # A message malformed beyond what the parsers expect: say so, leave it unread
                # for someone to look at, and go on with the others.
                report.problems.append(f"{name}: unreadable ({type(exc).__name__}: {exc}); left")
                continue
            counted = [e for e in recognised.events if e.kind not in ("auto_reply", "not_bounce")]
            if not counted:
                report.lines.append(f"{name}: skipped: {recognised.skipped or 'nothing counts'}")
                for event in recognised.events:
                    report.kinds[event.kind] = report.kinds.get(event.kind, 0) + 1
                if not recognised.events:
                    report.problems.append(f"{name}: {recognised.skipped}, skipped")
            else:
                apply_once(
                    engine, report_key(raw, message), counted, settings, report, name, now=now
                )
            source.done(key)
    finally:
        source.close()
    return report
