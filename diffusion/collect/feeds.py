"""Feeds: parse the entries of a fetched RSS/Atom feed into items."""

import calendar
import hashlib
import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import pycountry

from diffusion.collect import fastparse
from diffusion.collect.fetch import FeedSource
from diffusion.collect.sanitize import clean_html, clean_text, excerpt
from diffusion.errors import CollectError
from diffusion.models import SECTORS, TAG_KEYS, Item

SUMMARY_LIMIT = 500
_LANGUAGE = re.compile(r"[a-zA-Z]{2,3}")
_WEB_URL = re.compile(r"https?://[^\s/?#]+", re.IGNORECASE)
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
# Entry dates outside [EARLIEST_DATE, now + MAX_AHEAD] cannot be true: they become the fetch time.
EARLIEST_DATE = datetime(1990, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(days=2)


@dataclass
class ParsedFeed:
    """The entries of one feed, with a note when feedparser had to work around a problem."""

    # Column values of Item, one dict an entry: cheap to build, and to send back from a worker.
    rows: list[dict[str, Any]]
    warning: str | None = None

    @property
    def items(self) -> list[Item]:
        """The entries as unsaved Item rows."""
        return [Item(**row) for row in self.rows]


# -- parsing ----------------------------------------------------------------------------------


def parse_feed(
    body: bytes,
    headers: Mapping[str, str],
    source: FeedSource,
    *,
    now: datetime,
    default_language: str,
    base_url: str | None = None,
    fast: bool = True,
) -> ParsedFeed:
    """The entries of a feed, ready to store; raises CollectError if it is not a usable feed.

    `fast=False` reads every feed with feedparser (see collect/fastparse.py).
    """
    # The body and headers go in as they came, so that feedparser picks the encoding from the
    # Content-Type, the BOM or the XML declaration. nh3 sanitises and resolves links afterwards;
    # feedparser is given no Content-Location, else it would also turn bare guids ("42") into
    # URLs on the feed's host, which two feeds of one site would share (unless the feed declares
    # an xml:base, which needs the address to be resolved exactly).
    given = {k: v for k, v in headers.items() if k.lower() != "content-location"}
    xml_base = b"xml:base" in body
    if xml_base:
        # A relative xml:base is relative to the feed's address, and feedparser mangles the
        # chain without it; ids (absolute IRIs in Atom) under an xml:base are resolved too.
        given["content-location"] = base_url or source.url
    parsed, _parser = fastparse.parse(body, given, fast=fast)
    problem = parsed.get("bozo_exception")
    if not parsed.entries and (parsed.bozo or not parsed.version):
        if parsed.version:
            reason = f"malformed feed: {problem}"
        else:
            reason = "not an RSS or Atom feed" + (f" ({problem})" if problem else "")
        raise CollectError(f"{source.url}: {reason}")
    base = base_url or source.url
    feed_link = urljoin(base, parsed.feed.get("link") or "") or base
    feed_language = _language(parsed.feed.get("language"))
    atom = str(parsed.version or "").startswith("atom")
    rows: list[dict[str, Any]] = []
    bad_dates: list[str] = []
    seen: set[str] = set()
    for entry in parsed.entries:
        row = _row(
            entry,
            source,
            base,
            feed_link,
            feed_language,
            now,
            default_language,
            atom,
            bad_dates,
            xml_base,
        )
        if row["guid"] not in seen:  # the first of duplicate entries wins
            seen.add(row["guid"])
            rows.append(row)
    warnings = [f"{type(problem).__name__}: {problem}"] if parsed.bozo and problem else []
    if bad_dates:
        warnings.append(
            f"{len(bad_dates)} entr{'y' if len(bad_dates) == 1 else 'ies'} with an impossible or "
            f"unreadable date (such as {bad_dates[0]!r}) dated when fetched"
        )
    return ParsedFeed(rows, "; ".join(warnings) or None)


def _row(
    entry: Any,
    source: FeedSource,
    base: str,
    feed_link: str,
    feed_language: str | None,
    now: datetime,
    default_language: str,
    atom: bool,
    bad_dates: list[str],
    xml_base: bool = False,
) -> dict[str, Any]:
    link = _absolute(base, entry["link"].strip()) if entry.get("link") else None
    if link and not _WEB_URL.match(link):
        link = None  # a javascript: or data: link would end up in every email's href
    body = _body_html(entry, base, link or feed_link, xml_base)
    title = _title(entry, atom) or excerpt(body, 80) or link or "(untitled)"
    if entry.get("content") and entry.get("summary"):
        summary = excerpt(entry["summary"], SUMMARY_LIMIT)
    else:
        summary = excerpt(body, SUMMARY_LIMIT)
    digest = content_hash(title, summary, body, link)
    published, impossible = _published(entry, now)
    if impossible is not None:
        bad_dates.append(impossible)
    guid = (entry.get("id") or "").strip()
    if guid and not _SCHEME.match(guid):
        # A bare guid ("42") is unique only within its feed: qualify it with the feed's address.
        guid = f"{source.url}#{guid}"
    details = (entry.get("content") or [{}])[0], entry.get("title_detail") or {}
    language = (
        next((lang for lang in (_language(d.get("language")) for d in details) if lang), None)
        or feed_language
        or source.language
        or default_language
    )
    return {
        "kind": source.kind,
        "guid": guid or link or f"sha256:{digest}",
        "link": link,
        "title": title,
        "summary": summary,
        "body_html": body,
        "language": language,
        "translations": {},
        "tags": merge_tags(source.tags, [tag.get("term") or "" for tag in entry.get("tags") or []]),
        "public": source.public,
        "published_at": published,
        "collected_at": now,
        "content_hash": digest,
        "source_id": source.id,
        "origin": "feed",
    }


def _absolute(base: str, link: str) -> str:
    # Most links are absolute already: urljoin would parse both addresses for nothing.
    return link if _WEB_URL.match(link) else urljoin(base, link)


def _title(entry: Any, atom: bool) -> str:
    """The title as plain text: markup dropped from an HTML title, a text title kept as it is.

    Atom says which a title is (text unless told otherwise); RSS does not, and its readers take
    titles for HTML, so markup in an RSS title is dropped. A text title that reads `<script>`
    is shown as those characters wherever it is published.
    """
    detail = entry.get("title_detail") or {}
    value = entry.get("title") or ""
    if atom and detail.get("type") == "text/plain":
        return clean_text(value, markup=False)
    return clean_text(value)


def _body_html(
    entry: Any, document_url: str, fallback_base: str | None, xml_base: bool = True
) -> str:
    """The sanitised body, its relative links made absolute.

    Under an `xml:base` (on the feed, the entry or the content element; feedparser joins them,
    and gives the result as the content's `base`), links resolve against it, itself resolved
    against the feed's address as RFC 3986 says. Without one, they resolve against the entry's
    link: RSS has no base, and its writers mean their article's address.
    """
    contents = entry.get("content") or []
    chosen = next((c for c in contents if "html" in (c.get("type") or "")), None)
    chosen = chosen or (contents[0] if contents else entry.get("summary_detail"))
    if not chosen or not chosen.get("value"):
        return ""
    value: str = chosen["value"]
    if chosen.get("type") == "text/plain":
        value = "".join(f"<p>{html.escape(part)}</p>" for part in value.split("\n\n"))
    # Only an xml:base declares a base (feedparser-rs gives an RSS channel's link as one).
    declared = (chosen.get("base") or "").strip() if xml_base else ""
    return clean_html(value, urljoin(document_url, declared) if declared else fallback_base)


def _published(entry: Any, now: datetime) -> tuple[datetime, str | None]:
    """The entry's date, or `now` with a note when the one it gives cannot be read or be true.

    A date before 1990 or more than two days ahead is a mistake: a Unix timestamp in pubDate
    (which feedparser reads as the year 1763), a zeroed field, a wrong clock. Stored as it is, it
    would sink the entry out of every digest, or hold it at the top of every feed for years.
    """
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        stamp: time.struct_time | None = entry.get(key)
        if stamp:
            # feedparser normalises dates to UTC struct_time.
            moment = datetime.fromtimestamp(calendar.timegm(stamp), UTC)
            if EARLIEST_DATE <= moment <= now + MAX_AHEAD:
                return moment, None
            raw = entry.get(key.removesuffix("_parsed")) or moment.isoformat()
            return now, str(raw)
    for key in ("published", "updated", "created"):
        if str(entry.get(key) or "").strip():  # a date was given, but none can be read in it
            return now, str(entry[key]).strip()
    return now, None


def _language(value: str | None) -> str | None:
    primary = (value or "").strip().replace("_", "-").split("-")[0]
    return primary.lower() if _LANGUAGE.fullmatch(primary) else None


def content_hash(title: str, summary: str, body_html: str, link: str | None) -> str:
    """sha256 of the normalised title, summary, body and link: the last resort of dedup."""
    parts = (" ".join(part.split()) for part in (title, summary, body_html, link or ""))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def merge_tags(
    defaults: Mapping[str, Sequence[str]], categories: Sequence[str]
) -> dict[str, list[str]]:
    """The source's default tags plus entry categories: Sector codes, countries, else themes."""
    tags: dict[str, list[str]] = {key: list(defaults.get(key, ())) for key in TAG_KEYS}
    for raw in categories:
        term = clean_text(raw)
        if not term:
            continue
        if term in SECTORS:
            key = "sectors"
        elif len(term) == 2 and term.isupper() and pycountry.countries.get(alpha_2=term):
            key = "countries"
        else:
            key = "themes"
        if term not in tags[key]:
            tags[key].append(term)
    return {key: values for key, values in tags.items() if values}
