"""The send loop: claim, personalise, send, record; it knows an outbox and a transport, no SQL."""

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from diffusion.config import Settings
from diffusion.deliver.breaker import Breaker
from diffusion.deliver.message import MessageTemplate
from diffusion.deliver.ratelimit import RateLimiter
from diffusion.deliver.relayserver import SMTPServer
from diffusion.deliver.rows import Claimed, Outbox, Result, StopFlag
from diffusion.deliver.summary import Progress, SendSummary
from diffusion.deliver.transport import Outcome, Transport
from diffusion.errors import DiffusionError, InvalidInput, OutboxUnavailable

CLAIM_BATCH = 500
# Results are written at least this often: what a kill -9 can leave sent but unrecorded, and so
# sent twice on resume: small enough to stay "the messages in flight", big enough for cheap commits.
RECORD_BATCH = 50
RECORD_SECONDS = 0.2
# A claim holds about this share of the lease's worth of sending at the rate measured so far:
# a slow relay holds a few rows, a fast one batches of up to CLAIM_BATCH.
CLAIM_LEASE_SHARE = 0.1


class SendLoop:
    """One worker's delivery loop over the due rows of an outbox, through one transport."""

    def __init__(
        self,
        store: Outbox,
        transport: Transport,
        settings: Settings,
        *,
        worker: str,
        now: datetime,
        stop: StopFlag | None = None,
        progress: Progress | None = None,
        retry_within: float = 0.0,
        rate_share: int = 1,
    ) -> None:
        self.store = store
        self.transport = transport
        self.settings = settings
        self.worker = worker
        self.stop = stop
        self.progress = progress
        self.retry_within = retry_within
        self.summary = SendSummary()
        self.breaker = Breaker(settings.send.relay_failure_limit)
        # A [[senders]] identity's own relay has a breaker of its own: when an office's relay
        # fails, only that identity's messages wait; every other message still goes out.
        self.own_breakers: dict[str, Breaker] = {}
        self.waiting: dict[str, set[int]] = {}  # rows left queued by such a relay's faults
        self.limiter = RateLimiter(
            settings.send.rate_per_second / rate_share if settings.send.rate_per_second else None,
            settings.send.rate_per_hour / rate_share if settings.send.rate_per_hour else None,
        )
        # Never more than about a minute's sending at the configured rate.
        per_minute = [
            rate * 60 / rate_share
            for rate in (
                settings.send.rate_per_second,
                (settings.send.rate_per_hour or 0) / 60,
            )
            if rate
        ]
        self.batch_cap = max(1, min([CLAIM_BATCH, *(int(r) for r in per_minute)]))
        self.templates: dict[int, MessageTemplate] = {}
        self.results: list[Result] = []
        self.unsent: list[int] = []
        self.held: set[int] = set()  # claimed, neither recorded nor released yet
        self.lost: set[int] = set()  # held no more (lease taken over): never sent by us again
        self.database_down = False
        self.outage: str = ""
        self.last_record = time.monotonic()
        self._start_now = now
        self._start = time.monotonic()
        self._sent_at_start = 0.0

    def now(self) -> datetime:
        """The caller's `now`, moved on by the time this run has taken."""
        return self._start_now + timedelta(seconds=time.monotonic() - self._start)

    def halting(self) -> bool:
        """Whether to send nothing more now: asked to stop, relay down, or store gone."""
        stopped = self.stop is not None and self.stop.is_set()
        return stopped or self.breaker.open or self.database_down

    def _lost_store(self, exc: OutboxUnavailable) -> None:
        self.database_down = True
        self.outage = str(exc)

    def batch_size(self) -> int:
        """Rows to claim next: what the rate so far sends in a share of the lease."""
        elapsed = time.monotonic() - self._start
        done = self.summary.processed + self.summary.requeued
        if done == 0 or elapsed <= 0:
            wanted = self.transport.concurrency * 8
        else:
            wanted = int(done / elapsed * self.settings.send.lease_seconds * CLAIM_LEASE_SHARE)
        return max(self.transport.concurrency, min(self.batch_cap, wanted))

    # Claiming and recording run in the event loop's own thread. They are short (a claim of 500
    # rows, a record of 50 take milliseconds) and a worker thread would cost more than it saves:
    # it competes for the GIL, and each time the loop gives the GIL up for a socket call it waits
    # for the thread's switch interval to get it back (a convoy). In benchmarks/send.py moving them
    # out of `asyncio.to_thread` raised throughput from 0.75 to over 0.8 of raw aiosmtplib.
    def flush(self, force: bool = False) -> None:
        """Record the results gathered so far, when there are enough or they have waited enough."""
        if not self.results or self.database_down:
            return
        if not force and len(self.results) < RECORD_BATCH:
            if time.monotonic() - self.last_record < RECORD_SECONDS:
                return
        # Synchronous: no other coroutine runs until the batch is written and counted.
        batch, self.results = self.results, []
        if self.lost:  # another worker holds those rows now: theirs to write
            batch = [result for result in batch if result.outbox_id not in self.lost]
        self.last_record = time.monotonic()
        try:
            self.store.record(self.worker, batch, now=self.now())
        except OutboxUnavailable as exc:
            self.results = batch + self.results  # kept until the store answers again
            self._lost_store(exc)
            return
        self.held.difference_update(result.outbox_id for result in batch)
        self._count(batch)

    def _count(self, batch: list[Result]) -> None:
        for result in batch:
            if result.kind == "sent":
                self.summary.sent += 1
                continue
            if result.kind == "skipped":
                self.summary.skipped += 1
                continue
            reason = result.reply or result.kind
            self.summary.reasons[reason] = self.summary.reasons.get(reason, 0) + 1
            if result.kind == "relay":
                self.summary.requeued += 1
            elif (
                result.kind == "permanent" or result.attempts + 1 >= self.settings.send.max_attempts
            ):
                self.summary.failed += 1
        if self.progress is not None:
            self.progress(self.summary)

    def breaker_for(self, relay: str | None) -> Breaker:
        """The shared relays' breaker, or that of a sender identity's own relay."""
        if relay is None:
            return self.breaker
        if relay not in self.own_breakers:
            self.own_breakers[relay] = Breaker(self.settings.send.relay_failure_limit)
        return self.own_breakers[relay]

    async def send(self, item: Claimed) -> None:
        template = self.templates[item.edition_id]
        breaker = self.breaker_for(template.relay)
        if breaker.open:  # that identity's relay is down: its messages wait for the next send
            self.unsent.append(item.outbox_id)
            self.waiting.setdefault(template.relay or "", set()).add(item.outbox_id)
            return
        recipient = item.recipient
        message_id = item.message_id or template.message_id(recipient)
        to_store = None if item.message_id else message_id
        if item.status != "active":
            reason = f"not sent: the subscriber is {item.status}"
            self.results.append(Result(item.outbox_id, item.attempts, "skipped", reason))
            return
        try:
            data = template.personalise(recipient, message_id)
        except InvalidInput as exc:
            self.results.append(Result(item.outbox_id, item.attempts, "permanent", str(exc)))
            return
        if self.limiter.active:
            await self.limiter.acquire()
        outcomes = await self.transport.deliver(
            template.envelope_sender(recipient),
            [recipient.email],
            data,
            wire_ready=template.wire_ready,
            relay=template.relay,
        )
        outcome = outcomes.get(
            recipient.email, Outcome("temporary", "no answer for this recipient")
        )
        breaker.observe(outcome)
        if template.relay and outcome.kind == "relay":
            self.waiting.setdefault(template.relay, set()).add(item.outbox_id)
        self.results.append(
            Result(
                item.outbox_id,
                item.attempts,
                outcome.kind,
                outcome.reply,
                to_store,
                outcome.relay or None,
            )
        )

    def claimed(self) -> Iterator[Claimed]:
        """The due rows, claimed a batch at a time until none is left or the loop halts.

        The consumers share this one iterator: each takes the next row when its connection is
        free, with no queue between them, and the consumer that finds the batch used up claims
        the next one.
        """
        while not self.halting():
            try:
                batch = self.store.claim(self.worker, limit=self.batch_size(), now=self.now())
                if not batch:
                    return
                self.held.update(item.outbox_id for item in batch)
                for edition_id in {i.edition_id for i in batch} - self.templates.keys():
                    edition = self.store.edition(edition_id)
                    self.templates[edition_id] = MessageTemplate.from_edition(
                        edition, self.settings, now=self.now()
                    )
            except OutboxUnavailable as exc:
                self._lost_store(exc)
                return
            except DiffusionError:
                self.unsent.extend(item.outbox_id for item in batch)  # given back below
                raise
            yield from batch

    async def consume(self, items: Iterator[Claimed]) -> None:
        for item in items:
            if item.outbox_id in self.lost:
                continue  # another worker holds it now
            if self.halting():
                self.unsent.append(item.outbox_id)
            else:
                await self.send(item)
                self.flush()

    async def heartbeat(self) -> None:
        """Renew the lease of the held rows every third of it; note those taken over."""
        every = max(0.05, self.settings.send.lease_seconds / 3)
        while True:
            await asyncio.sleep(every)
            if not self.held or self.database_down:
                continue
            try:
                kept = self.store.renew(self.worker, set(self.held), now=self.now())
            except OutboxUnavailable as exc:
                self._lost_store(exc)
                continue
            self.lost |= self.held - kept
            self.held &= kept

    async def recover(self) -> bool:
        """After the store stopped answering: ask again with backoff, then write what was kept.

        Returns False, with `summary.halted` saying why, when it does not answer within
        `database_outage_seconds`: the rows stay held until their lease runs out.
        """
        deadline = time.monotonic() + self.settings.send.database_outage_seconds
        pause = 0.25
        while True:
            try:
                kept = self.store.renew(self.worker, set(self.held), now=self.now())
                self.store.release_others(self.worker, kept, now=self.now())
            except OutboxUnavailable as exc:
                self.outage = str(exc)
                if time.monotonic() + pause > deadline:
                    self.summary.halted = (
                        f"{self.outage}; gave up after "
                        f"{self.settings.send.database_outage_seconds:g} s with "
                        f"{len(self.results)} results not recorded "
                        "(those messages may go out again on resume)"
                    )
                    self.summary.database_down = True
                    return False
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            # Rows whose lease ran out meanwhile may be another worker's now: not ours to write.
            self.lost |= self.held - kept
            self.held &= kept
            self.results = [r for r in self.results if r.outbox_id not in self.lost]
            self.database_down = False
            self.flush(force=True)
            if not self.database_down:
                self._give_back()
            if not self.database_down:
                return True

    def _give_back(self) -> None:
        unsent = [i for i in self.unsent if i not in self.lost]
        self.unsent = []
        if not unsent:
            return
        try:
            self.store.release(self.worker, unsent, now=self.now())
        except OutboxUnavailable as exc:
            self._lost_store(exc)
            return
        self.held.difference_update(unsent)

    async def run(self) -> SendSummary:
        consumers: list[asyncio.Task[None]] = []
        heartbeat = asyncio.create_task(self.heartbeat())
        try:
            while True:
                requeued = self.summary.requeued
                items = self.claimed()
                consumers = [
                    asyncio.create_task(self.consume(items))
                    for _ in range(self.transport.concurrency)
                ]
                await asyncio.gather(*consumers)
                consumers = []
                self.flush(force=True)
                if self.database_down:
                    if not await self.recover():
                        break
                    continue
                self._give_back()
                if self.halting():
                    break
                if self.summary.requeued > requeued:
                    continue  # rows a relay fault put back: once more, until the breaker opens
                try:
                    # Rows a dead worker left behind (lease over, or its process gone).
                    if self.store.reclaim(now=self.now()):
                        continue
                    if not await self._wait_for_retry():
                        break
                except OutboxUnavailable as exc:
                    self._lost_store(exc)
        finally:
            heartbeat.cancel()
            for task in consumers:  # when one failed: the others stop before results are written
                task.cancel()
            await asyncio.gather(heartbeat, *consumers, return_exceptions=True)
            if not self.summary.database_down:
                self.flush(force=True)
                self._give_back()
            await self.transport.close()
        if self.breaker.open and not self.summary.halted:
            self.summary.halted = self.breaker.reason
        for relay, breaker in self.own_breakers.items():
            if breaker.open:
                self.summary.held_back[SMTPServer.from_url(relay, self.settings).name] = (
                    breaker.reason or "",
                    len(self.waiting.get(relay, ())),
                )
        return self.summary

    async def _wait_for_retry(self) -> bool:
        """Sleep until the next deferred row is due, if that is within `retry_within` seconds."""
        if self.retry_within <= 0:
            return False
        due = self.store.next_retry()
        if due is None:
            return False
        wait = (due - self.now()).total_seconds()
        if wait > self.retry_within:
            return False
        deadline = time.monotonic() + max(wait, 0) + 0.01
        # Sleep in short steps so that a stop request is seen promptly.
        for _ in range(int((deadline - time.monotonic()) / 0.2) + 1):
            if self.halting():
                break
            await asyncio.sleep(max(0.0, min(0.2, deadline - time.monotonic())))
        return True
