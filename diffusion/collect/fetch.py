"""Fetching feeds: RSS/Atom sources concurrently, with conditional GET, or from files."""

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

MAX_FEED_BYTES = 20_000_000
# A Retry-After further away than this is taken as this: a wrong header must not stop a source.
MAX_RETRY_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class FeedSource:
    """What fetching and parsing need to know of a source: a plain snapshot of its row."""

    id: int
    name: str
    url: str
    kind: str
    language: str | None = None
    public: bool = True
    tags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    retry_not_before: datetime | None = None  # the server asked to wait until then


@dataclass
class FetchResult:
    """The answer of one source: a body to parse, "not modified", or an error."""

    source: FeedSource
    status: int | None  # HTTP status; 200/304 for file:// sources; None when nothing answered
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    final_url: str | None = None  # after redirects: what relative links are resolved against
    moved_to: str | None = None  # where every redirect said the feed has moved for good
    retry_after: str | None = None  # the Retry-After of a 429 or 503 answer, as sent

    def wait_until(self, now: datetime) -> datetime | None:
        """When the server asked to be fetched again (Retry-After), at most a day from now."""
        value = (self.retry_after or "").strip()
        if not value:
            return None
        if value.isdigit():
            until = now + timedelta(seconds=int(value))
        else:
            try:
                until = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None  # not a date: as if it were not there
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
        return min(until, now + MAX_RETRY_AFTER) if until > now else None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


async def fetch_feed(
    client: httpx.AsyncClient, source: FeedSource, *, fetch_timeout: float
) -> FetchResult:
    """GET one source, sending back its validators so that an unchanged feed answers 304."""
    if urlsplit(source.url).scheme == "file":
        return await asyncio.to_thread(read_file, source)
    headers = {}
    if source.etag:
        headers["If-None-Match"] = source.etag
    if source.last_modified:
        headers["If-Modified-Since"] = source.last_modified
    try:
        # httpx's timeout bounds each network operation; this bounds the whole exchange, so that
        # a server trickling bytes cannot hold a slot for ever.
        async with asyncio.timeout(fetch_timeout):
            return await _get(client, source, headers)
    except TimeoutError:
        return FetchResult(
            source, None, error=f"no answer within {fetch_timeout:g} s (fetch_timeout)"
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return FetchResult(source, None, error=f"{type(exc).__name__}: {str(exc) or source.url}")


async def _get(
    client: httpx.AsyncClient, source: FeedSource, headers: dict[str, str]
) -> FetchResult:
    async with client.stream("GET", source.url, headers=headers) as response:
        result = FetchResult(
            source,
            response.status_code,
            etag=response.headers.get("etag") or source.etag,
            last_modified=response.headers.get("last-modified") or source.last_modified,
        )
        # 301 and 308 say "use the new address from now on"; 302 and 307 only "this time".
        if response.history and all(hop.status_code in (301, 308) for hop in response.history):
            result.moved_to = str(response.url)
        if response.status_code == 304:
            return result
        if not response.is_success:
            result.error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            if response.status_code in (429, 503):
                result.retry_after = response.headers.get("retry-after")
            return result
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_FEED_BYTES:
                # A feed this large is a mistake or an attack: stop reading rather than fill memory.
                result.error = f"feed larger than {MAX_FEED_BYTES // 1_000_000} MB; not read"
                return result
            chunks.append(chunk)
        result.body = b"".join(chunks)
        result.headers = {name.lower(): value for name, value in response.headers.items()}
        result.final_url = str(response.url)
        return result


def read_file(source: FeedSource) -> FetchResult:
    """A file:// source: its modification time plays the part of Last-Modified."""
    path = url2pathname(urlsplit(source.url).path)
    try:
        stamp = formatdate(os.stat(path).st_mtime, usegmt=True)
        if stamp == source.last_modified:
            return FetchResult(source, 304, etag=source.etag, last_modified=stamp)
        with open(path, "rb") as handle:
            body = handle.read()
    except OSError as exc:
        return FetchResult(source, None, error=f"cannot read {path}: {exc.strerror or exc}")
    return FetchResult(source, 200, body=body, last_modified=stamp)


async def fetch_feeds(
    sources: Sequence[FeedSource], *, fetch_timeout: float, concurrency: int, user_agent: str
) -> AsyncIterator[FetchResult]:
    """Fetch every source, at most `concurrency` at a time; yield each answer as it arrives."""
    limit = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"}

    async def one(client: httpx.AsyncClient, source: FeedSource) -> FetchResult:
        async with limit:
            return await fetch_feed(client, source, fetch_timeout=fetch_timeout)

    async with httpx.AsyncClient(
        headers=headers, limits=limits, timeout=fetch_timeout, follow_redirects=True
    ) as client:
        tasks = [asyncio.create_task(one(client, source)) for source in sources]
        try:
            for done in asyncio.as_completed(tasks):
                yield await done
        finally:
            for task in tasks:
                task.cancel()
