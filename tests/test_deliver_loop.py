"""The send loop against an outbox kept in memory (no database) and a real SMTP server."""

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from diffusion.config import Settings, load_settings
from diffusion.contracts import Recipient, Segment
from diffusion.deliver.loop import SendLoop
from diffusion.deliver.rows import Claimed, Result
from diffusion.deliver.summary import SendSummary
from diffusion.deliver.transport import IN_FLIGHT, make_transport
from diffusion.errors import OutboxUnavailable
from diffusion.models import Edition
from tests.smtpserver import EDITION_HTML, EDITION_TEXT, RecordingServer, smtp_server

__all__ = ["smtp_server"]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class Row:
    state: str = "queued"
    attempts: int = 0
    holder: str | None = None
    error: str = ""


class MemoryOutbox:
    """The loop's Outbox, in a dict; `outage` calls in a row raise OutboxUnavailable."""

    def __init__(self, count: int) -> None:
        self.rows = {n: Row() for n in range(1, count + 1)}
        self.outage_after: int | None = None  # records before the store goes away
        self.outage = 0
        self.take_over = False  # at the first renewal, another worker takes every held row
        self.taken_over: set[int] = set()
        self.records = 0
        self.edition_row = Edition(
            id=1,
            segment=Segment("liaison_committee").id,
            audience="liaison_committee",
            period="2026-11",
            subject="November",
            html=EDITION_HTML,
            text=EDITION_TEXT,
            status="sending",
        )

    def _answer(self) -> None:
        if self.outage:
            self.outage -= 1
            raise OutboxUnavailable("the database stopped answering: connection refused")

    def claim(self, worker: str, *, limit: int, now: datetime) -> list[Claimed]:
        self._answer()
        due = [n for n, row in self.rows.items() if row.state == "queued"][:limit]
        for n in due:
            self.rows[n].state, self.rows[n].holder = "sending", worker
        return [
            Claimed(
                n,
                1,
                self.rows[n].attempts,
                None,
                Recipient(n, f"r{n}@example.org", "", "en"),
                "active",
            )
            for n in due
        ]

    def edition(self, edition_id: int) -> Edition:
        self._answer()
        return self.edition_row

    def record(self, worker: str, results: Sequence[Result], *, now: datetime) -> None:
        self._answer()
        self.records += 1
        if self.outage_after is not None and self.records == self.outage_after:
            self.outage = 6
        for result in results:
            row = self.rows[result.outbox_id]
            if row.holder != worker or row.state != "sending":
                continue
            row.holder = None
            row.error = result.reply
            if result.kind == "sent":
                row.state, row.attempts = "sent", row.attempts + 1
            elif result.kind == "relay":
                row.state = "queued"
            else:
                row.state, row.attempts = "failed", row.attempts + 1

    def renew(self, worker: str, outbox_ids: Collection[int], *, now: datetime) -> set[int]:
        self._answer()
        if self.take_over and not self.taken_over:
            self.taken_over = {n for n in outbox_ids if self.rows[n].holder == worker}
            for n in self.taken_over:
                self.rows[n].holder = "someone-else"
        return {n for n in outbox_ids if self.rows[n].holder == worker}

    def release(self, worker: str, outbox_ids: Collection[int], *, now: datetime) -> None:
        self._answer()
        for n in outbox_ids:
            if self.rows[n].holder == worker:
                self.rows[n].state, self.rows[n].holder = "queued", None

    def release_others(self, worker: str, keep: Collection[int], *, now: datetime) -> int:
        stray = [n for n, r in self.rows.items() if r.holder == worker and r.state == "sending"]
        self.release(worker, [n for n in stray if n not in keep], now=now)
        return len(stray)

    def reclaim(self, *, now: datetime) -> int:
        self._answer()
        return 0

    def next_retry(self) -> datetime | None:
        return None


def run(store: MemoryOutbox, settings: Settings) -> SendSummary:
    async def main() -> SendSummary:
        loop = SendLoop(store, make_transport(settings), settings, worker="w:1:a", now=NOW)
        return await loop.run()

    return asyncio.run(main())


def config(tmp_path: Path, server: RecordingServer, **extra: object) -> Settings:
    return load_settings(
        home=tmp_path, secret_key="k-for-signing-links-0123456789ab", smtp_url=server.url, **extra
    )


def test_the_loop_sends_each_row_once_and_records_it(
    tmp_path: Path, smtp_server: RecordingServer
) -> None:
    store = MemoryOutbox(120)
    summary = run(store, config(tmp_path, smtp_server))
    assert summary.sent == 120 and summary.halted is None
    assert {row.state for row in store.rows.values()} == {"sent"}
    assert smtp_server.deliveries() == {f"r{n}@example.org": 1 for n in range(1, 121)}


def test_while_the_store_is_away_nothing_more_is_sent_and_results_wait_in_memory(
    tmp_path: Path, smtp_server: RecordingServer
) -> None:
    store = MemoryOutbox(300)
    store.outage_after = 2
    summary = run(store, config(tmp_path, smtp_server))
    assert store.outage == 0  # it did go away, and came back
    assert summary.sent == 300 and summary.halted is None
    assert {row.state for row in store.rows.values()} == {"sent"}
    assert smtp_server.deliveries() == {f"r{n}@example.org": 1 for n in range(1, 301)}


def test_a_store_away_for_good_stops_the_loop_with_one_line(
    tmp_path: Path, smtp_server: RecordingServer
) -> None:
    store = MemoryOutbox(300)
    store.outage_after = 2
    settings = config(tmp_path, smtp_server, database_outage_seconds=0.5)
    store.outage = 0

    def down_for_good(worker: str, results: Sequence[Result], *, now: datetime) -> None:
        store.outage = 10**6
        raise OutboxUnavailable("the database stopped answering: connection refused")

    store.record = down_for_good  # type: ignore[method-assign]
    summary = run(store, settings)
    assert summary.database_down and summary.halted is not None
    assert summary.halted.startswith("the database stopped answering: connection refused")
    assert "\n" not in summary.halted
    # Only what was in flight when the store went away was sent: the loop stopped there.
    assert len(smtp_server.received) <= 50 + settings.smtp.connections * IN_FLIGHT


def test_rows_taken_over_by_another_worker_are_neither_sent_nor_recorded(
    tmp_path: Path, smtp_server: RecordingServer
) -> None:
    store = MemoryOutbox(40)
    store.take_over = True
    sent_before: list[set[str]] = []
    renew = store.renew

    def renew_and_note(worker: str, outbox_ids: Collection[int], *, now: datetime) -> set[int]:
        if not sent_before:
            sent_before.append(set(smtp_server.deliveries()))
        return renew(worker, outbox_ids, now=now)

    store.renew = renew_and_note  # type: ignore[method-assign]
    smtp_server.rcpt_delay = lambda address: 0.1  # the first batch outlives a renewal
    settings = config(tmp_path, smtp_server, send_lease_seconds=0.3, smtp_connections=1)
    summary = run(store, settings)

    assert store.taken_over and sent_before
    taken = {f"r{n}@example.org" for n in store.taken_over}
    sent_after = set(smtp_server.deliveries()) - sent_before[0]
    # Those in flight when the renewal answered: already handed to the one connection.
    assert len(sent_after & taken) <= IN_FLIGHT
    assert all(store.rows[n].state == "sending" for n in store.taken_over)  # not written over
    assert summary.sent == sum(row.state == "sent" for row in store.rows.values())
