"""A collection run: fetch every source, parse, store, and record each source's outcome."""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from diffusion import db
from diffusion.collect.feeds import FeedSource, FetchResult, fetch_feeds, parse_feed
from diffusion.collect.store import upsert_items
from diffusion.config import Settings
from diffusion.errors import CollectError, UnknownRecord
from diffusion.models import Source


@dataclass
class SourceResult:
    """What happened to one source in a run."""

    name: str
    status: str  # "ok", "not_modified" or "error"
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
) -> CollectionSummary:
    """Collect every source (or those named): one call for the CLI, the demo and the scheduler.

    Sources are fetched concurrently; each one's items are stored and committed as soon as it
    answers, so a failing source never holds back or undoes the others.
    """
    with db.session_scope(engine) as session:
        sources = load_sources(session, names)
    results = asyncio.run(_collect(engine, settings, sources, now=now, progress=progress))
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
        )
        for row in rows
    ]


async def _collect(
    engine: Engine,
    settings: Settings,
    sources: list[FeedSource],
    *,
    now: datetime,
    progress: Callable[[str], None] | None,
) -> list[SourceResult]:
    results = []
    fetched = fetch_feeds(
        sources,
        fetch_timeout=settings.fetch_timeout,
        concurrency=settings.fetch_concurrency,
        user_agent=settings.user_agent,
    )
    # Storing runs in the event loop's thread between answers: the network waits overlap with
    # parsing, and SQLite sees one writer.
    async for fetched_result in fetched:
        results.append(store_result(engine, fetched_result, settings=settings, now=now))
        if progress:
            progress(fetched_result.source.name)
    return results


def store_result(
    engine: Engine, result: FetchResult, *, settings: Settings, now: datetime
) -> SourceResult:
    """Parse one answer, store its items and record the outcome on the source row."""
    source = result.source
    try:
        with db.session_scope(engine) as session:
            return _store(session, result, settings=settings, now=now)
    except sa.exc.IntegrityError as exc:
        # Another run stored the same entries meanwhile: record it, the next run will update.
        error = f"not stored, another collection ran at the same time: {exc.orig}"
        with db.session_scope(engine) as session:
            _record(session, source.id, now, result.status, error)
        return SourceResult(source.name, "error", error=error, http_status=result.status)


def _store(
    session: Session, result: FetchResult, *, settings: Settings, now: datetime
) -> SourceResult:
    source = result.source
    if result.error or result.body is None and not result.not_modified:
        error = result.error or "empty answer"
        _record(session, source.id, now, result.status, error)
        return SourceResult(source.name, "error", error=error, http_status=result.status)
    if result.not_modified:
        _record(session, source.id, now, result.status, None, result)
        return SourceResult(source.name, "not_modified", not_modified=True, http_status=304)
    try:
        parsed = parse_feed(
            result.body or b"",
            result.headers,
            source,
            now=now,
            default_language=settings.default_language,
            base_url=result.final_url,
        )
    except CollectError as exc:
        _record(session, source.id, now, result.status, str(exc))
        return SourceResult(source.name, "error", error=str(exc), http_status=result.status)
    created, updated = upsert_items(session, parsed.items, now=now)
    row = _record(session, source.id, now, result.status, None, result)
    if row is not None:
        row.last_new_items = created
    return SourceResult(
        source.name,
        "ok",
        new=created,
        updated=updated,
        http_status=result.status,
        warning=parsed.warning,
    )


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
    if validators is not None:
        # Validators are kept only once the body was used, so a failed parse is fetched again.
        row.etag, row.last_modified = validators.etag, validators.last_modified
    session.add(row)
    return row
