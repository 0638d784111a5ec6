"""Bounces: delivery status notifications (RFC 3464) that stop mail to dead addresses."""

import hashlib
import mailbox
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from diffusion import db, subscriptions
from diffusion.config import Settings
from diffusion.errors import InvalidInput
from diffusion.models import BounceReportRead, OutboxMessage, Person


@dataclass(frozen=True)
class Bounce:
    """One recipient's line in a delivery status notification."""

    recipient: str | None
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # 5.1.1
    diagnostic: str = ""
    message_id: str | None = None  # of the message that bounced

    @property
    def hard(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")

    @property
    def soft(self) -> bool:
        return self.action in ("failed", "delayed") and self.status.startswith("4")


@dataclass
class BounceReport:
    """What reading a bounce folder did."""

    source: str
    reports: int = 0  # delivery status notifications read
    already_read: int = 0  # reports an earlier run counted (an mbox keeps them)
    hard: int = 0
    soft: int = 0
    unmatched: int = 0  # bounces naming no message or subscriber of ours
    bounced: list[str] = field(default_factory=list)  # addresses no longer mailed
    problems: list[str] = field(default_factory=list)

    def add(self, other: "BounceReport") -> None:
        self.reports += other.reports
        self.already_read += other.already_read
        self.hard += other.hard
        self.soft += other.soft
        self.unmatched += other.unmatched
        self.bounced += other.bounced
        self.problems += other.problems

    def summary(self) -> str:
        earlier = f" ({self.already_read} read before, skipped)" if self.already_read else ""
        return (
            f"{self.source}: {self.reports} reports{earlier}, {self.hard} hard and {self.soft} "
            f"soft bounces, {self.unmatched} unmatched; {len(self.bounced)} subscribers marked "
            "bounced"
        )


def _value(field_value: object) -> str:
    return " ".join(str(field_value or "").split())


def _address(field_value: object) -> str | None:
    """`rfc822; someone@example.org` -> someone@example.org."""
    text = _value(field_value)
    if not text:
        return None
    address = text.split(";", 1)[-1].strip().strip("<>").lower()
    return address or None


def _original_message_id(report: Message) -> str | None:
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner["Message-ID"]:
                return _value(inner["Message-ID"])
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                headers = BytesHeaderParser().parsebytes(raw)
                if headers["Message-ID"]:
                    return _value(headers["Message-ID"])
    return None


def parse_dsn(report: Message) -> list[Bounce]:
    """The per-recipient bounces of a multipart/report; [] when it is not a DSN."""
    if report.get_content_type() != "multipart/report":
        return []
    message_id = _original_message_id(report)
    found = []
    for part in report.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block is about the message, the rest per recipient
            if not isinstance(block, Message) or not block["Status"]:
                continue
            found.append(
                Bounce(
                    recipient=_address(block["Original-Recipient"])
                    or _address(block["Final-Recipient"]),
                    action=_value(block["Action"]).lower(),
                    status=_value(block["Status"]).split(" ")[0],
                    diagnostic=_value(block["Diagnostic-Code"]),
                    message_id=message_id,
                )
            )
    return found


def read_folder(path: Path) -> Iterator[tuple[str, bytes]]:
    """(key, bytes) of every unread message in a maildir, or every message in an mbox."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise InvalidInput(f"{path}: a folder but not a maildir (no cur/ or new/ inside)")
        box: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(path, create=False)
    elif path.is_file():
        box = mailbox.mbox(path, create=False)
    else:
        raise InvalidInput(f"{path}: no such maildir or mbox")
    for key in box.keys():
        if isinstance(box, mailbox.Maildir) and "S" in box.get_message(key).get_flags():
            continue  # read in an earlier run
        with box.get_file(key) as handle:
            yield key, handle.read()


def report_key(raw: bytes, message: Message) -> str:
    """What identifies a report across runs: its Message-ID, or its bytes when it has none."""
    message_id = _value(message["Message-ID"])
    return hashlib.sha256(message_id.encode() if message_id else raw).hexdigest()


def _mark_seen(path: Path, key: str) -> None:
    if path.is_dir():
        box = mailbox.Maildir(path, create=False)
        message = box.get_message(key)
        message.set_subdir("cur")
        message.add_flag("S")
        box[key] = message


def apply_bounce(
    session: Session, bounce: Bounce, settings: Settings, report: BounceReport, *, now: datetime
) -> None:
    """Record one bounce on its outbox row and subscriber."""
    if not (bounce.hard or bounce.soft):
        return
    row = None
    if bounce.message_id:
        row = session.exec(
            select(OutboxMessage).where(OutboxMessage.message_id == bounce.message_id)
        ).first()
    subscriber = session.get(Person, row.subscriber_id) if row else None
    if subscriber is None and bounce.recipient:
        subscriber = subscriptions.find_person(session, bounce.recipient)
        if subscriber is not None and row is None:
            row = session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.subscriber_id == subscriber.id)
                .order_by(col(OutboxMessage.id).desc())
            ).first()
    if subscriber is None:
        report.unmatched += 1
        return
    reason = f"bounce {bounce.status} {bounce.diagnostic}".strip()
    if bounce.hard:
        report.hard += 1
        if row is not None:
            row.state = "failed_permanent"
            row.last_error = reason[:1000]
            row.next_attempt_at = None
            row.updated_at = now
            session.add(row)
    else:
        report.soft += 1
    if subscriptions.mark_bounced(
        session,
        subscriber,
        origin=subscriptions.Origin.bounce(reason),
        now=now,
        hard=bounce.hard,
        soft_limit=settings.soft_bounce_limit,
    ):
        report.bounced.append(subscriber.email)


def process_bounces(
    engine: Engine, settings: Settings, *, now: datetime, path: Path | None = None
) -> BounceReport:
    """Read every new DSN at `path` (default: settings.bounce_maildir) and record it."""
    folder = path or getattr(settings, "bounce_maildir", None)
    if folder is None:
        raise InvalidInput("no bounce folder: give a PATH or set bounce_maildir")
    folder = Path(folder)
    report = BounceReport(str(folder))
    for key, raw in read_folder(folder):
        message = message_from_bytes(raw, policy=policy.compat32)
        read = BounceReportRead(key=report_key(raw, message), read_at=now)
        this = BounceReport(report.source)  # counted in once its changes are committed
        try:
            with db.session_scope(engine) as session:
                if session.get(BounceReportRead, read.key) is not None:
                    this.already_read += 1
                else:
                    _apply_report(session, f"{folder}/{key}", message, settings, this, now)
                    session.add(read)  # with the changes: a report counts once, or not at all
        except IntegrityError:  # another run read it at the same moment; its changes stand
            this = BounceReport(report.source, already_read=1)
        report.add(this)
        _mark_seen(folder, key)
    return report


def _apply_report(
    session: Session,
    where: str,
    message: Message,
    settings: Settings,
    report: BounceReport,
    now: datetime,
) -> None:
    found = parse_dsn(message)
    if not found:
        report.problems.append(f"{where}: not a delivery status notification, skipped")
        return
    report.reports += 1
    for bounce in found:
        apply_bounce(session, bounce, settings, report, now=now)
