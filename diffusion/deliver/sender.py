"""The send job: queue approved editions, run the send loop in this or worker processes."""

import asyncio
import multiprocessing
import signal
from collections.abc import Sequence
from datetime import datetime
from types import FrameType
from typing import Any

from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.config import Settings
from diffusion.deliver import outbox
from diffusion.deliver.enqueue import enqueue_editions, pending_editions
from diffusion.deliver.loop import RECORD_BATCH, SendLoop
from diffusion.deliver.rows import StopFlag
from diffusion.deliver.store import DatabaseOutbox, answering
from diffusion.deliver.summary import Progress, SendSummary
from diffusion.deliver.transport import Transport, make_transport
from diffusion.errors import OutboxUnavailable

__all__ = [
    "RECORD_BATCH",
    "Progress",
    "SendSummary",
    "StopFlag",
    "enqueue_editions",
    "pending_editions",
    "send_pending",
]


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
    store = DatabaseOutbox(engine, settings, edition_ids)
    try:
        store.reclaim(now=now)
    except OutboxUnavailable as exc:
        return SendSummary(halted=str(exc), database_down=True)

    async def main() -> SendSummary:
        loop = SendLoop(
            store,
            transport or make_transport(settings),
            settings,
            worker=outbox.worker_name(),
            now=now,
            stop=stop_event,
            progress=progress,
            retry_within=retry_within,
            rate_share=rate_share,
        )
        return await loop.run()

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
    results.put(summary)


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
    try:
        before = _sent_count(engine, edition_ids)
    except OutboxUnavailable:
        before = 0
    try:
        while any(process.is_alive() for process in processes):
            if stop_event is not None and stop_event.is_set():
                stop.set()
            for process in processes:
                process.join(timeout=0.5 / workers)
            if progress is not None:
                try:
                    progress(SendSummary(sent=_sent_count(engine, edition_ids) - before))
                except OutboxUnavailable:
                    pass  # the workers wait for the database themselves; the bar waits too
    except KeyboardInterrupt:
        stop.set()
        for process in processes:
            process.join()
        raise
    while not results.empty():
        summary.add(results.get())
    return summary


def _sent_count(engine: Engine, edition_ids: Sequence[int]) -> int:
    with answering(engine) as session:
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
    if summary.database_down:
        return summary  # nothing can be counted; the resume finishes the editions
    try:
        with answering(engine) as session:
            summary.editions_sent = outbox.finish_editions(session, ids, now=now)
            summary.deferred = sum(
                states.get("failed_temporary", 0) for states in outbox.counts(session, ids).values()
            )
    except OutboxUnavailable as exc:
        summary.halted, summary.database_down = str(exc), True
    return summary


def count_sent(engine: Engine, edition_ids: Sequence[int]) -> int:
    """How many messages of these editions are recorded as sent."""
    return _sent_count(engine, edition_ids)
