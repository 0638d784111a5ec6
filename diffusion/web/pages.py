"""Public web pages of what we publish: one per item, one per feed, and the feed files."""

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from threading import Lock
from typing import Any

from babel import Locale
from sqlmodel import Session, col, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from diffusion import i18n, links
from diffusion.collect.sanitize import clean_html
from diffusion.contracts import DigestEntry
from diffusion.deliver.feeds import FORMATS, family_keys, feed_items, feed_titles
from diffusion.models import SECTORS, Item, Organisation
from diffusion.select.digest import entry_for, key_name
from diffusion.select.directory import Directory, read_directory
from diffusion.select.rules import FeedFamily, RoutingRules
from diffusion.web.base import Web, choose_language, web_of

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates" / "pages")
# How many of the newest public items a /news/ page routes at request time: a feed shows at
# most 50, and 2,000 candidates cover every key's latest at UNESCO's scale.
NEWS_CANDIDATES = 2000
# Tags that have a feed family of their own, and so a page to link to.
TAG_FAMILIES = {
    "sectors": "sector",
    "countries": "country",
    "organisations": "ngo",
    "field_offices": "field_office",
}
_FAMILY_AUDIENCE = {"ngo": "ngo", "sector": "sector", "field_office": "field_office"}
FEED_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml"}
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _language_name(code: str, reader: str) -> str:
    try:
        return Locale.parse(code).get_display_name(i18n.locale_for(reader)) or code
    except (ValueError, LookupError):
        return code


def _render(
    request: Request, template: str, language: str, status: int = 200, **context: Any
) -> Response:
    web = web_of(request)

    words = i18n.words(language)

    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "lang": language,
            "dir": i18n.direction(language),
            "_": words.gettext,
            "gettext": words.gettext,
            "ngettext": words.ngettext,
            "pgettext": words.pgettext,
            "organisation": i18n.newsletter_name(web.settings, language),
            "languages": [(code, i18n.own_name(code)) for code in web.settings.languages],
            **context,
        },
        status_code=status,
    )
    response.headers.update(HEADERS)
    response.headers["Content-Language"] = language
    return response


def _language(request: Request, *preferred: str | None) -> str:
    return choose_language(request, web_of(request).settings, *preferred)


def _not_found(request: Request, language: str) -> Response:
    return _render(request, "missing.html", language, status=404)


# Items -------------------------------------------------------------------------------------


def find_public_item(session: Session, reference: str, now: datetime) -> Item | None:
    """The public item a page name stands for (its id, or its slug), published by `now`."""
    query = select(Item).where(col(Item.public).is_(True), col(Item.published_at) <= now)
    if reference.isdigit():
        query = query.where(col(Item.id) == int(reference))
    else:
        guids = links.item_guids(reference)
        if not guids:
            return None
        query = query.where(or_(*(col(Item.guid) == guid for guid in guids)))
    return session.exec(query).first()


def _item_and_directory(web: Web, reference: str, now: datetime) -> tuple[Item | None, Directory]:
    with Session(web.engine, expire_on_commit=False) as session:
        return find_public_item(session, reference, now), read_directory(session)


def _tag_links(
    web: Web, entry: DigestEntry, language: str, directory: Directory
) -> list[dict[str, str | None]]:
    shown: list[dict[str, str | None]] = []
    for tag, values in entry.tags.items():
        family = TAG_FAMILIES.get(tag)
        for value in values:
            url = None
            label = value
            if family and family in web.rules.feeds:
                key = value.upper() if tag in ("sectors", "countries") else value
                url = links.news_url(web.settings, family, key, language)
                audience = _FAMILY_AUDIENCE.get(family, "member_state")
                label = key_name(audience, key, language, directory) or value
            shown.append({"label": label, "url": url})
    return shown


async def item_page(request: Request) -> Response:
    web = web_of(request)
    reference = request.path_params["reference"]
    now = datetime.now(UTC)
    item, directory = await run_in_threadpool(_item_and_directory, web, reference, now)
    language = _language(request)
    if item is None or item.id is None:
        return _not_found(request, language)
    versions = [item.language, *sorted(set(item.translations) - {item.language})]
    # The page's language picks the version shown, when there is one in it.
    entry = entry_for(item, language)
    canonical = links.item_url(web.settings, item.guid, item.id)
    if entry.language != item.language:
        canonical += f"?lang={entry.language}"
    return _render(
        request,
        "item.html",
        language,
        entry=entry,
        body=clean_html(entry.body_html),
        day=i18n.format_day(entry.published_at, language),
        canonical=canonical,
        language_name=_language_name(entry.language, language),
        versions=[
            {
                "code": code,
                "name": _language_name(code, code),
                "url": links.item_url(web.settings, item.guid, item.id) + f"?lang={code}",
            }
            for code in versions
            if code != entry.language
        ],
        tags=_tag_links(web, entry, language, directory),
        source=entry.link,
    )


# News pages ---------------------------------------------------------------------------------


def family_of(rules: RoutingRules, name: str) -> FeedFamily | None:
    """The feed family a /news/ name stands for: its own name, or an audience it serves."""
    if name in rules.feeds:
        return rules.feeds[name]
    return next((family for family in rules.feeds.values() if name in family.audiences), None)


@dataclass
class NewsPage:
    """What a /news/ page shows: the feed's titles and its items in the reader's language."""

    title: str
    description: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    feeds: list[dict[str, str]] = field(default_factory=list)


def _news(web: Web, family: FeedFamily, key: str, language: str, now: datetime) -> NewsPage | None:
    with Session(web.engine) as session:
        directory = read_directory(session)
        items = list(
            session.exec(
                select(Item)
                .where(col(Item.public).is_(True), col(Item.published_at) <= now)
                .order_by(col(Item.published_at).desc(), col(Item.id))
                .limit(NEWS_CANDIDATES)
            )
        )
    if key not in family_keys(family, directory, items):
        return None
    title, description = feed_titles(web.settings, family, key, language, directory)
    page = NewsPage(title, description)
    stem = f"{family.name}/{key}" if key else family.name
    page.feeds = [
        {"url": links.feed_url(web.settings, f"{stem}.{language}.{fmt}"), "type": FEED_TYPES[fmt]}
        for fmt in FORMATS
    ]
    for item in feed_items(items, web.rules, family, key, directory):
        assert item.id is not None
        entry = entry_for(item, language)
        page.entries.append(
            {
                "entry": entry,
                "page": links.item_url(web.settings, item.guid, item.id),
                "day": i18n.format_day(entry.published_at, language),
                "language_name": _language_name(entry.language, language),
            }
        )
    return page


async def news_page(request: Request) -> Response:
    web = web_of(request)
    language = _language(request)
    family = family_of(web.rules, request.path_params["family"])
    key = request.path_params.get("key", "")
    if family is not None and family.key_type in ("sector", "country"):
        key = key.upper()
    if family is None or (family.key_type == "none") != (key == ""):
        return _not_found(request, language)
    page = await run_in_threadpool(_news, web, family, key, language, datetime.now(UTC))
    if page is None:
        return _not_found(request, language)
    canonical = links.news_url(web.settings, family.name, key, language)
    return _render(request, "news.html", language, page=page, canonical=canonical)


# The directory --------------------------------------------------------------------------------


def _directory(web: Web) -> Directory:
    with Session(web.engine) as session:
        return read_directory(session)


def directory_rows(
    directory: Directory, *, sector: str, country: str, field_text: str
) -> list[Organisation]:
    """The NGOs that match every criterion given: a Sector, a country, a field of action."""
    wanted = field_text.casefold().strip()
    chosen = []
    for org in sorted(directory.organisations.values(), key=lambda org: org.name.casefold()):
        if sector and sector not in {code.upper() for code in org.sectors}:
            continue
        if country and country not in {code.upper() for code in org.countries}:
            continue
        fields = [*org.themes, org.name, org.acronym or ""]
        if wanted and not any(wanted in value.casefold() for value in fields):
            continue
        chosen.append(org)
    return chosen


async def directory_page(request: Request) -> Response:
    web = web_of(request)
    language = _language(request)
    sector = request.query_params.get("sector", "").strip().upper()
    country = request.query_params.get("country", "").strip().upper()
    field_text = request.query_params.get("field", "").strip()[:100]
    directory = await run_in_threadpool(_directory, web)
    organisations = directory_rows(directory, sector=sector, country=country, field_text=field_text)
    countries = sorted(
        directory.countries() | set(directory.national_commissions),
        key=lambda code: key_name("member_state", code, language, directory),
    )
    commissions = [
        nc for code, nc in sorted(directory.national_commissions.items()) if code == country
    ]

    def sector_name(code: str) -> str:
        return key_name("sector", code, language, directory) or code

    def country_name(code: str) -> str:
        return key_name("member_state", code, language, directory) or code

    return _render(
        request,
        "directory.html",
        language,
        canonical=links.directory_url(web.settings, language, country),
        sector=sector,
        country=country,
        field_text=field_text,
        sectors=[(code, sector_name(code)) for code in SECTORS],
        countries=[(code, country_name(code)) for code in countries],
        organisations=organisations,
        commissions=commissions,
        sector_name=sector_name,
        country_name=country_name,
    )


# Feed files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cached:
    stamp: tuple[int, int]  # (mtime_ns, size) of the file it was read from
    body: bytes
    etag: str
    last_modified: str


class FeedFiles:
    """The feed files, served from memory with their ETag; a file is read again once changed.

    A feed is asked for far more often than it changes: answering from memory (one stat per
    request) instead of streaming the file each time is most of a feed request's cost.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self._cache: dict[str, _Cached] = {}
        self._lock = Lock()

    def get(self, relative: str) -> _Cached | None:
        parts = relative.split("/")
        if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            return None
        if relative.rsplit(".", 1)[-1] not in FEED_TYPES:
            return None
        path = self.folder.joinpath(*parts)
        try:
            status = os.stat(path)
        except OSError:
            return None
        stamp = (status.st_mtime_ns, status.st_size)
        cached = self._cache.get(relative)
        if cached is not None and cached.stamp == stamp:
            return cached
        try:
            body = path.read_bytes()
        except OSError:
            return None
        fresh = _Cached(
            stamp,
            body,
            '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            formatdate(status.st_mtime, usegmt=True),
        )
        with self._lock:
            self._cache[relative] = fresh
        return fresh


def _not_modified(request: Request, cached: _Cached) -> bool:
    """RFC 9110: If-None-Match decides when sent; else If-Modified-Since."""
    tags = request.headers.get("if-none-match")
    if tags:
        return any(tag.strip().removeprefix("W/") in (cached.etag, "*") for tag in tags.split(","))
    since = request.headers.get("if-modified-since")
    if not since:
        return False
    try:
        return parsedate_to_datetime(since) >= parsedate_to_datetime(cached.last_modified)
    except (TypeError, ValueError):
        return False


async def feed_file(request: Request) -> Response:
    files: FeedFiles = request.app.state.feed_files
    relative = request.path_params["path"]
    cached = files.get(relative)
    if cached is None:
        return Response(b"not found\n", status_code=404, media_type="text/plain")
    headers = {
        "ETag": cached.etag,
        "Last-Modified": cached.last_modified,
        "Cache-Control": "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
    }
    if _not_modified(request, cached):
        return Response(status_code=304, headers=headers)
    kind = FEED_TYPES[relative.rsplit(".", 1)[-1]]
    return Response(cached.body, headers=headers, media_type=f"{kind}; charset=utf-8")


def routes() -> list[Route]:
    """The routes of these pages, for the application to mount."""
    return [
        Route("/items/{reference}", item_page, methods=["GET"]),
        Route("/news/{family}", news_page, methods=["GET"]),
        Route("/news/{family}/{key}", news_page, methods=["GET"]),
        Route("/directory/", directory_page, methods=["GET"]),
        Route("/feeds/{path:path}", feed_file, methods=["GET"]),
    ]
