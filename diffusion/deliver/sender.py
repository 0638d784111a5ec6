"""The send job: enqueue approved editions, then claim, personalise, send and record in batches."""

import asyncio
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db
from diffusion.config import Settings
from diffusion.deliver import outbox
from diffusion.deliver.message import MessageTemplate
from diffusion.deliver.ratelimit import RateLimiter
from diffusion.deliver.transport import Outcome, Transport, make_transport
from diffusion.errors import DiffusionError, InvalidInput, UnknownRecord
from diffusion.models import Edition

CLAIM_BATCH = 500
# Results are written at least this often: what a kill -9 can leave sent but unrecorded, and so
# sent twice on resume: small enough to stay "the messages in flight", big enough for cheap commits.
RECORD_BATCH = 50
RECORD_SECONDS = 0.2


class StopFlag(Protocol):
    """A threading.Event, multiprocessing.Event or anything else that says "stop claiming"."""

    def is_set(self) -> bool: ...


@dataclass
class SendSummary:
    """What one send run did: messages sent, deferred for a retry, failed for good."""

    sent: int = 0
    deferred: int = 0  # rows left failed_temporary, due again later
    failed: int = 0  # rows that became failed_permanent in this run
    skipped: int = 0  # subscribers no longer active when their turn came
    editions_sent: list[int] = field(default_factory=list)

    def add(self, other: "SendSummary") -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.skipped += other.skipped

    @property
    def processed(self) -> int:
        return self.sent + self.failed + self.skipped

    def summary(self) -> str:
        """One line for logs and the scheduler's job history."""
        return (
            f"{self.sent} sent, {self.deferred} deferred, {self.failed} failed, "
            f"{self.skipped} skipped, {len(self.editions_sent)} editions finished"
        )


Progress = Callable[[SendSummary], None]


def pending_editions(
    engine: Engine,
    *,
    edition_ids: Sequence[int] | None = None,
    period: str | None = None,
    audience: str | None = None,
    resume_only: bool = False,
) -> list[Edition]:
    """The editions to send: approved ones (and `sending` ones, to resume), in id order."""
    statuses = ("sending",) if resume_only else ("approved", "sending")
    query = select(Edition).where(col(Edition.status).in_(statuses)).order_by(col(Edition.id))
    if edition_ids is not None:
        query = query.where(col(Edition.id).in_(edition_ids))
    if period:
        query = query.where(Edition.period == period)
    if audience:
        query = query.where(Edition.audience == audience)
    with db.session_scope(engine) as session:
        return list(session.exec(query).all())


def enqueue_editions(
    engine: Engine, settings: Settings, editions: Sequence[Edition], *, now: datetime
) -> int:
    """Queue each approved edition for its segment; status and rows change in one transaction."""
    added = 0
    for edition in editions:
        with db.session_scope(engine) as session:
            fresh = session.get(Edition, edition.id)
            if fresh is None or fresh.status != "approved":
                continue  # already queued (by us earlier, or by a concurrent worker)
            members = outbox.segment_subscribers(session, fresh)
            added += outbox.enqueue(session, fresh, members, settings, now=now)
            fresh.status = "sending"
            session.add(fresh)
    return added


class _Run:
    """One worker's delivery loop over a set of editions."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        transport: Transport,
        *,
        now: datetime,
        edition_ids: Sequence[int],
        stop: StopFlag | None,
        progress: Progress | None,
        retry_within: float,
        rate_share: int = 1,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.transport = transport
        self.edition_ids = list(edition_ids)
        self.stop = stop
        self.progress = progress
        self.retry_within = retry_within
        self.worker = outbox.worker_name()
        self.summary = SendSummary()
        self.limiter = RateLimiter(
            settings.rate_per_second / rate_share if settings.rate_per_second else None,
            settings.rate_per_hour / rate_share if settings.rate_per_hour else None,
        )
        # A batch is claimed for at most about a minute's sending, well within the lease.
        per_minute = [
            rate * 60 / rate_share
            for rate in (settings.rate_per_second, (settings.rate_per_hour or 0) / 60)
            if rate
        ]
        self.batch_size = max(1, min([CLAIM_BATCH, *(int(r) for r in per_minute)]))
        self.templates: dict[int, MessageTemplate] = {}
        self.results: list[outbox.Result] = []
        self.unsent: list[int] = []
        self.last_record = time.monotonic()
        self._start_now = now
        self._start = time.monotonic()

    def now(self) -> datetime:
        """The caller's `now`, moved on by the time this run has taken."""
        return self._start_now + timedelta(seconds=time.monotonic() - self._start)

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    # Claiming and recording run in the event loop's own thread. They are short (a claim of 500
    # rows, a record of 50 take milliseconds) and a worker thread would cost more than it saves:
    # it competes for the GIL, and each time the loop gives the GIL up for a socket call it waits
    # for the thread's switch interval to get it back (a convoy). In benchmarks/send.py moving them
    # out of `asyncio.to_thread` raised throughput from 0.75 to over 0.8 of raw aiosmtplib.
    def _claim(self) -> list[outbox.Claimed]:
        with db.session_scope(self.engine) as session:
            return outbox.claim(
                session,
                self.worker,
                edition_ids=self.edition_ids,
                now=self.now(),
                limit=self.batch_size,
            )

    def _template(self, edition_id: int) -> MessageTemplate:
        with db.session_scope(self.engine) as session:
            edition = session.get(Edition, edition_id)
            if edition is None:
                raise UnknownRecord(f"edition {edition_id} is not in the database")
            return MessageTemplate.from_edition(edition, self.settings, now=self.now())

    def _record(self, results: list[outbox.Result]) -> None:
        with db.session_scope(self.engine) as session:
            outbox.record(session, results, self.settings, now=self.now())

    def _reclaim(self) -> int:
        with db.session_scope(self.engine) as session:
            return outbox.reclaim(session, now=self.now())

    def _next_retry(self) -> datetime | None:
        with db.session_scope(self.engine) as session:
            return outbox.next_retry(session, self.edition_ids)

    def flush(self, force: bool = False) -> None:
        """Record the results gathered so far, when there are enough or they have waited enough."""
        if not self.results:
            return
        if not force and len(self.results) < RECORD_BATCH:
            if time.monotonic() - self.last_record < RECORD_SECONDS:
                return
        # Synchronous: no other coroutine runs until the batch is written and counted.
        batch, self.results = self.results, []
        self.last_record = time.monotonic()
        self._record(batch)
        for result in batch:
            if result.kind == "sent":
                self.summary.sent += 1
            elif result.kind == "skipped":
                self.summary.skipped += 1
            elif result.kind == "permanent" or result.attempts + 1 >= (self.settings.max_attempts):
                self.summary.failed += 1
        if self.progress is not None:
            self.progress(self.summary)

    async def send(self, item: outbox.Claimed) -> None:
        template = self.templates[item.edition_id]
        message_id = item.message_id or template.message_id(item)
        to_store = None if item.message_id else message_id
        if item.status != "active":
            reason = f"not sent: the subscriber is {item.status}"
            self.results.append(outbox.Result(item.outbox_id, item.attempts, "skipped", reason))
            return
        try:
            data = template.personalise(item, message_id)
        except InvalidInput as exc:
            self.results.append(outbox.Result(item.outbox_id, item.attempts, "permanent", str(exc)))
            return
        if self.limiter.active:
            await self.limiter.acquire()
        outcomes = await self.transport.deliver(
            template.envelope_sender(item), [item.email], data, wire_ready=template.wire_ready
        )
        outcome = outcomes.get(item.email, Outcome("temporary", "no answer for this recipient"))
        self.results.append(
            outbox.Result(item.outbox_id, item.attempts, outcome.kind, outcome.reply, to_store)
        )

    def claimed(self) -> Iterator[outbox.Claimed]:
        """The due rows, claimed a batch at a time until none is left or a stop is asked for.

        The consumers share this one iterator: each takes the next row when its connection is
        free, with no queue between them, and the consumer that finds the batch used up claims
        the next one.
        """
        while not self.stopping():
            batch = self._claim()
            if not batch:
                return
            try:
                for edition_id in {i.edition_id for i in batch} - self.templates.keys():
                    self.templates[edition_id] = self._template(edition_id)
            except DiffusionError:
                self.unsent.extend(item.outbox_id for item in batch)  # given back below
                raise
            yield from batch

    async def consume(self, items: Iterator[outbox.Claimed]) -> None:
        for item in items:
            if self.stopping():
                self.unsent.append(item.outbox_id)
            else:
                await self.send(item)
                self.flush()

    async def run(self) -> SendSummary:
        consumers: list[asyncio.Task[None]] = []
        try:
            while True:
                items = self.claimed()
                consumers = [
                    asyncio.create_task(self.consume(items))
                    for _ in range(self.transport.concurrency)
                ]
                await asyncio.gather(*consumers)
                self.flush(force=True)
                if self.stopping():
                    break
                # Rows a dead worker left behind (lease over, or its process gone).
                if await asyncio.to_thread(self._reclaim):
                    continue
                if not await self._wait_for_retry():
                    break
        finally:
            for task in consumers:  # when one failed: the others stop before results are written
                task.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
            self.flush(force=True)
            if self.unsent:
                unsent, now = self.unsent, self.now()

                def give_back() -> None:
                    with db.session_scope(self.engine) as session:
                        outbox.release(session, unsent, now=now)

                await asyncio.to_thread(give_back)
            await self.transport.close()
        return self.summary

    async def _wait_for_retry(self) -> bool:
        """Sleep until the next deferred row is due, if that is within `retry_within` seconds."""
        if self.retry_within <= 0:
            return False
        due = await asyncio.to_thread(self._next_retry)
        if due is None:
            return False
        wait = (due - self.now()).total_seconds()
        if wait > self.retry_within:
            return False
        deadline = time.monotonic() + max(wait, 0) + 0.01
        # Sleep in short steps so that a stop request is seen promptly.
        for _ in range(int((deadline - time.monotonic()) / 0.2) + 1):
            if self.stopping():
                break
            await asyncio.sleep(max(0.0, min(0.2, deadline - time.monotonic())))
        return True


def deliver(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    edition_ids: Sequence[int],
    stop_event: StopFlag | None = None,
    progress: Progress | None = None,
    retry_within: float = 0.0,
    rate_share: int = 1,
    transport: Transport | None = None,
) -> SendSummary:
    """Send the due outbox rows of these editions from this process until none is left."""
    with db.session_scope(engine) as session:
        outbox.reclaim(session, now=now)

    async def main() -> SendSummary:
        run = _Run(
            engine,
            settings,
            transport or make_transport(settings),
            now=now,
            edition_ids=edition_ids,
            stop=stop_event,
            progress=progress,
            retry_within=retry_within,
            rate_share=rate_share,
        )
        return await run.run()

    return asyncio.run(main())


def _worker_process(
    settings: Settings,
    url: str,
    now: datetime,
    edition_ids: list[int],
    stop: Any,
    retry_within: float,
    workers: int,
    results: Any,
) -> None:
    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into `stop`
    engine = db.make_engine(url)
    try:
        summary = deliver(
            engine,
            settings,
            now=now,
            edition_ids=edition_ids,
            stop_event=stop,
            retry_within=retry_within,
            rate_share=workers,
        )
    finally:
        engine.dispose()
    results.put((summary.sent, summary.failed, summary.skipped))


def _deliver_in_processes(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    edition_ids: list[int],
    workers: int,
    stop_event: StopFlag | None,
    progress: Progress | None,
    retry_within: float,
) -> SendSummary:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    results = context.Queue()
    url = engine.url.render_as_string(hide_password=False)
    processes = [
        context.Process(
            target=_worker_process,
            args=(settings, url, now, edition_ids, stop, retry_within, workers, results),
            name=f"diffusion-send-{number}",
        )
        for number in range(workers)
    ]
    for process in processes:
        process.start()
    summary = SendSummary()
    before = _sent_count(engine, edition_ids)
    try:
        while any(process.is_alive() for process in processes):
            if stop_event is not None and stop_event.is_set():
                stop.set()
            for process in processes:
                process.join(timeout=0.5 / workers)
            if progress is not None:
                progress(SendSummary(sent=_sent_count(engine, edition_ids) - before))
    except KeyboardInterrupt:
        stop.set()
        for process in processes:
            process.join()
        raise
    while not results.empty():
        sent, failed, skipped = results.get()
        summary.add(SendSummary(sent=sent, failed=failed, skipped=skipped))
    return summary


def _sent_count(engine: Engine, edition_ids: Sequence[int]) -> int:
    with db.session_scope(engine) as session:
        return sum(states.get("sent", 0) for states in outbox.counts(session, edition_ids).values())


def send_pending(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    edition_ids: Sequence[int] | None = None,
    workers: int = 1,
    stop_event: StopFlag | None = None,
    progress: Progress | None = None,
    retry_within: float = 0.0,
    resume_only: bool = False,
    period: str | None = None,
    audience: str | None = None,
) -> SendSummary:
    """The send job: queue approved editions, deliver everything due, mark finished editions sent.

    `retry_within`: keep going while a deferred message is due again within that many seconds.
    """
    editions = pending_editions(
        engine, edition_ids=edition_ids, period=period, audience=audience, resume_only=resume_only
    )
    ids = [edition.id for edition in editions if edition.id is not None]
    if not ids:
        return SendSummary()
    enqueue_editions(engine, settings, editions, now=now)
    if workers > 1:
        summary = _deliver_in_processes(
            engine,
            settings,
            now=now,
            edition_ids=ids,
            workers=workers,
            stop_event=stop_event,
            progress=progress,
            retry_within=retry_within,
        )
    else:
        summary = deliver(
            engine,
            settings,
            now=now,
            edition_ids=ids,
            stop_event=stop_event,
            progress=progress,
            retry_within=retry_within,
        )
    with db.session_scope(engine) as session:
        summary.editions_sent = outbox.finish_editions(session, ids, now=now)
        summary.deferred = sum(
            states.get("failed_temporary", 0) for states in outbox.counts(session, ids).values()
        )
    return summary


def count_sent(engine: Engine, edition_ids: Sequence[int]) -> int:
    """How many messages of these editions are recorded as sent."""
    return _sent_count(engine, edition_ids)
