"""A collection run: fetch every source, parse, store, and record each source's outcome."""

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from multiprocessing.context import BaseContext

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from diffusion import db
from diffusion.collect import fastparse
from diffusion.collect.feeds import ParsedFeed, parse_feed
from diffusion.collect.fetch import FeedSource, FetchResult, fetch_feeds
from diffusion.collect.items import upsert_items
from diffusion.config import Settings
from diffusion.errors import CollectError, UnknownRecord
from diffusion.models import CONTENT_KINDS, Source


@dataclass
class SourceResult:
    """What happened to one source in a run."""

    name: str
    status: str  # "ok", "not_modified", "error", or "waiting" (the server asked to wait)
    new: int = 0
    updated: int = 0
    not_modified: bool = False
    error: str | None = None
    http_status: int | None = None
    warning: str | None = None  # the feed was used, but feedparser had to work around something


@dataclass
class CollectionSummary:
    """The outcome of a run, one result per source in the order of their names."""

    results: list[SourceResult] = field(default_factory=list)

    @property
    def new(self) -> int:
        return sum(result.new for result in self.results)

    @property
    def updated(self) -> int:
        return sum(result.updated for result in self.results)

    @property
    def failed(self) -> list[SourceResult]:
        return [result for result in self.results if result.status == "error"]


def run_collection(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    names: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> CollectionSummary:
    """Collect every source (or those named): one call for the CLI, the demo and the scheduler.

    Sources are fetched concurrently; each one's items are stored and committed as soon as it
    answers, so a failing source never holds back or undoes the others. `workers` is the number
    of parsing processes (0: parse in this process); by default one per core (at most 4) from
    16 sources on, for the feeds that feedparser (pure Python) reads: feedparser-rs parses the
    others in this process, quicker than a worker could send its rows back.
    """
    with db.session_scope(engine) as session:
        sources = load_sources(session, names)
    results: list[SourceResult] = []
    fetchable = []
    for source in sources:
        if source.retry_not_before and source.retry_not_before > now:
            wait = f"{source.retry_not_before:%Y-%m-%d %H:%M} UTC"
            note = f"not fetched: the server asked to wait until {wait} (Retry-After)"
            results.append(SourceResult(source.name, "waiting", warning=note))
            continue
        if source.kind in CONTENT_KINDS:
            fetchable.append(source)
            continue
        # Not worth a request: its items could not be stored under that kind.
        error = f"kind {source.kind!r} is not one of {', '.join(CONTENT_KINDS)}; fix the source"
        results.append(store_result(engine, FetchResult(source, None, error=error), None, now=now))
        if progress:
            progress(source.name)
    if workers is None:
        workers = _default_workers(len(fetchable))
    results += asyncio.run(
        _collect(engine, settings, fetchable, now=now, progress=progress, workers=workers)
    )
    order = {source.name: index for index, source in enumerate(sources)}
    return CollectionSummary(sorted(results, key=lambda result: order[result.name]))


def load_sources(session: Session, names: Sequence[str] | None = None) -> list[FeedSource]:
    """Snapshots of the sources to collect; raises UnknownRecord naming any unknown name."""
    query = select(Source).order_by(col(Source.name))
    if names:
        query = query.where(col(Source.name).in_(names))
    rows = session.exec(query).all()
    if names:
        missing = sorted(set(names) - {row.name for row in rows})
        if missing:
            raise UnknownRecord(
                f"no source named {', '.join(missing)}; `diffusion sources list` shows them"
            )
    return [
        FeedSource(
            id=row.id or 0,
            name=row.name,
            url=row.url,
            kind=row.kind,
            language=row.language,
            public=row.public,
            tags=row.tags,
            etag=row.etag,
            last_modified=row.last_modified,
            retry_not_before=row.retry_not_before,
        )
        for row in rows
    ]


# Below this many sources, parsing in the collecting process is quicker than starting workers.
POOL_THRESHOLD = 16


def _default_workers(source_count: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not cores or cores < 2 or source_count < POOL_THRESHOLD:
        return 0  # one core: workers would only compete with this process
    return min(cores, 4)


async def _collect(
    engine: Engine,
    settings: Settings,
    sources: list[FeedSource],
    *,
    now: datetime,
    progress: Callable[[str], None] | None,
    workers: int,
) -> list[SourceResult]:
    # feedparser is pure Python: with many sources, parsing goes to worker processes (forkserver:
    # no copy of this process's threads, sockets or database connections) while this process
    # fetches and stores. Storing stays here, between answers: SQLite sees one writer.
    executor: ProcessPoolExecutor | None = None
    pooled = workers >= 1 and len(sources) > 1

    def pool() -> ProcessPoolExecutor | None:
        # Started at the first body to parse: when every source answers 304 there is none, and
        # starting the workers would cost more than the whole pass.
        nonlocal executor
        if executor is None and pooled:
            context: BaseContext
            if "forkserver" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("forkserver")
                # Imported once in the fork server, not once a worker.
                multiprocessing.set_forkserver_preload([__name__])
            else:
                context = multiprocessing.get_context("spawn")
            executor = ProcessPoolExecutor(workers, mp_context=context)
        return executor

    loop = asyncio.get_running_loop()
    results: list[SourceResult] = []

    async def finish(fetched: FetchResult) -> None:
        parsed: ParsedFeed | str | None = None
        if fetched.body is not None and not fetched.error:
            # feedparser-rs reads a feed quicker than a worker's answer travels back: only the
            # feeds that need feedparser go to the workers.
            slow = not fastparse.fast_parser_fits(fetched.body, fetched.headers)
            workers_pool = pool() if slow else None
            job = partial(
                parse_result, fetched, now=now, default_language=settings.default_language
            )
            try:
                parsed = await loop.run_in_executor(workers_pool, job) if workers_pool else job()
            except BrokenProcessPool as exc:  # a worker died (out of memory...): say so
                parsed = f"the parsing process stopped: {exc}"
        results.append(store_result(engine, fetched, parsed, now=now))
        if progress:
            progress(fetched.source.name)

    try:
        tasks = []
        async for fetched in fetch_feeds(
            sources,
            fetch_timeout=settings.collect.fetch_timeout,
            concurrency=settings.collect.fetch_concurrency,
            user_agent=settings.collect.user_agent,
        ):
            tasks.append(asyncio.create_task(finish(fetched)))
        await asyncio.gather(*tasks)
    finally:
        if executor:
            executor.shutdown(cancel_futures=True)
    return results


def parse_result(result: FetchResult, *, now: datetime, default_language: str) -> ParsedFeed | str:
    """Parse a fetched body: the feed's items, or why it cannot be used (runs in a worker)."""
    try:
        return parse_feed(
            result.body or b"",
            result.headers,
            result.source,
            now=now,
            default_language=default_language,
            base_url=result.final_url,
        )
    except CollectError as exc:
        return str(exc)


def store_result(
    engine: Engine, result: FetchResult, parsed: ParsedFeed | str | None, *, now: datetime
) -> SourceResult:
    """Store one source's parsed items and record the outcome on its row, in one transaction."""
    source = result.source
    try:
        with db.session_scope(engine) as session:
            return _store(session, result, parsed, now=now)
    except sa.exc.IntegrityError as exc:
        # Another run stored the same entries meanwhile: record it, the next run will update.
        error = f"not stored, another collection ran at the same time: {exc.orig}"
        with db.session_scope(engine) as session:
            _record(session, source.id, now, result.status, error)
        return SourceResult(source.name, "error", error=error, http_status=result.status)


def _store(
    session: Session, result: FetchResult, parsed: ParsedFeed | str | None, *, now: datetime
) -> SourceResult:
    source = result.source
    if result.not_modified:
        row = _record(session, source.id, now, result.status, None, result)
        moved = _follow_move(session, row, result)
        return SourceResult(
            source.name, "not_modified", not_modified=True, http_status=304, warning=moved
        )
    if not isinstance(parsed, ParsedFeed):
        error = parsed or result.error or "empty answer"
        until = result.wait_until(now)
        if until is not None:
            error += f"; asked to wait until {until:%Y-%m-%d %H:%M} UTC (Retry-After)"
        row = _record(session, source.id, now, result.status, error)
        if row is not None:
            row.retry_not_before = until
        return SourceResult(source.name, "error", error=error, http_status=result.status)
    created, updated = upsert_items(session, parsed.rows, now=now)
    row = _record(session, source.id, now, result.status, None, result)
    if row is not None:
        row.last_new_items = created
    moved = _follow_move(session, row, result)
    return SourceResult(
        source.name,
        "ok",
        new=created,
        updated=updated,
        http_status=result.status,
        warning="; ".join(note for note in (parsed.warning, moved) if note) or None,
    )


def _follow_move(session: Session, row: Source | None, result: FetchResult) -> str | None:
    """Take a permanent redirect's address as the source's own, as feed readers do."""
    if row is None or not result.moved_to or result.moved_to == row.url:
        return None
    taken = session.exec(select(Source).where(Source.url == result.moved_to)).first()
    if taken is not None:
        return f"moved permanently to {result.moved_to}, the address of source {taken.name!r}"
    old, row.url = row.url, result.moved_to
    session.add(row)
    return f"moved permanently: address changed from {old} to {row.url}"


def _record(
    session: Session,
    source_id: int,
    now: datetime,
    status: int | None,
    error: str | None,
    validators: FetchResult | None = None,
) -> Source | None:
    row = session.get(Source, source_id)
    if row is None:  # deleted while the run was fetching
        return None
    row.last_fetched_at, row.last_status, row.last_error = now, status, error
    row.retry_not_before = None  # set again by the caller if the server asks to wait
    if validators is not None:
        # Validators are kept only once the body was used, so a failed parse is fetched again.
        row.etag, row.last_modified = validators.etag, validators.last_modified
    session.add(row)
    return row
