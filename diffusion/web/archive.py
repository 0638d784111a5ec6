"""The archive: the list of sent public editions, and the web version of an edition."""

import html
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from diffusion import i18n, links, personalise
from diffusion.config import Settings
from diffusion.models import Edition
from diffusion.personalise import fill
from diffusion.web.base import SECURITY_HEADERS, Web, choose_language, message_page, web_of
from diffusion.web.limits import row_id_in_range
from diffusion.web.pages import _language, _render

# The audiences whose sent editions are listed in the public archive and open to anyone.
LISTED_AUDIENCES = ("public",)
ARCHIVE_LIMIT = 500
# The segment id's parts that narrow an audience's edition (see digest.Segment.id).
_NARROWING = ("sectors=", "themes=", "regions=")
# Values the web version's placeholders are filled with, then found again and rewritten: a
# browser is nobody's inbox, so the personal footer and the links that need a recipient go.
_MARK = {name: f"diffusion-web-version-{name}" for name in ("email", "unsubscribe", "prefs")}


WEB_VERSION_NOTE = i18n.N_(
    "This is the web version of an email. To change your preferences or to unsubscribe, use "
    "the links at the end of the email you received."
)
ARCHIVE, SUBSCRIBE = i18n.N_("Archive"), i18n.N_("Subscribe")


@dataclass
class Listed:
    """One edition in the archive list, and the narrowed editions grouped under it."""

    id: int
    subject: str
    language: str
    sent: str
    narrowing: str = ""
    narrowed: list["Listed"] = field(default_factory=list)


def _narrowing(segment: str) -> str:
    """`sectors=ED,SC|themes=x` of a segment id; "" for an audience's main edition."""
    return "|".join(part for part in segment.split("|") if part.startswith(_NARROWING))


def _listed_rows(web: Web) -> list[Any]:
    # Only the columns the list shows: an edition's HTML is some 50 kB, and 500 of them a page.
    columns = (
        Edition.id,
        Edition.subject,
        Edition.period,
        Edition.language,
        Edition.audience,
        Edition.key,
        Edition.cadence,
        Edition.segment,
        Edition.sent_at,
        Edition.created_at,
    )
    with Session(web.engine) as session:
        return list(
            session.exec(
                select(*columns)  # type: ignore[call-overload]
                .where(Edition.status == "sent", col(Edition.audience).in_(LISTED_AUDIENCES))
                .order_by(col(Edition.sent_at).desc(), col(Edition.id).desc())
                .limit(ARCHIVE_LIMIT)
            )
        )


def archive_list(rows: list[Any], language: str) -> list[Listed]:
    """Main editions first, newest first, the page's language before others; each audience's
    narrowed editions of the same period grouped under its main one."""
    groups: dict[tuple[str, str, str, str], list[Any]] = defaultdict(list)
    order: list[tuple[str, str, str, str]] = []
    for row in rows:
        group = (row.audience, row.key, row.period, row.cadence)
        if group not in groups:
            order.append(group)
        groups[group].append(row)
    listed: list[Listed] = []
    for group in order:
        members = sorted(
            groups[group],
            key=lambda row: (bool(_narrowing(row.segment)), row.language != language, row.id),
        )
        shown = [
            Listed(
                id=row.id,
                subject=row.subject or row.period,
                language=row.language,
                sent=i18n.format_day(row.sent_at or row.created_at, language),
                narrowing=_narrowing(row.segment).replace("|", "; ").replace("=", ": "),
            )
            for row in members
        ]
        mains = [entry for entry in shown if not entry.narrowing] or shown[:1]
        for entry in shown:
            if entry not in mains:
                mains[0].narrowed.append(entry)
        listed.extend(mains)
    return listed


async def archive_index(request: Request) -> Response:
    web = web_of(request)
    language = _language(request)
    rows = await run_in_threadpool(_listed_rows, web)
    return _render(request, "archive.html", language, editions=archive_list(rows, language))


def _edition(web: Web, edition_id: int, signature: str | None) -> Edition | None:
    """A sent edition the request may see: a public one, or any with its link's signature."""
    if not row_id_in_range(edition_id):
        return None
    with Session(web.engine) as session:
        edition = session.get(Edition, edition_id)
    if edition is None or edition.status not in ("sending", "sent"):
        return None
    if edition.audience in LISTED_AUDIENCES:
        return edition
    return edition if links.archive_signature_ok(web.settings, edition_id, signature) else None


async def archive_edition(request: Request) -> Response:
    web = web_of(request)
    edition = await run_in_threadpool(
        _edition, web, request.path_params["edition_id"], request.query_params.get("sig")
    )
    # A non-public edition without its signature gets the answer of a missing one: 404.
    if edition is None:
        language = choose_language(request, web.settings)
        return message_page(
            request,
            language,
            i18n.N_("Page not found"),
            i18n.words(language).gettext("There is no page at this address."),
            status=404,
            error=True,
        )
    # The web version of everyone's email: no recipient, and the archive's way around.
    page = web_version(edition, web.settings)
    headers = dict(SECURITY_HEADERS)
    if edition.audience in LISTED_AUDIENCES:
        del headers["Cache-Control"]  # a public page may be cached; a signed one is not kept
    else:
        headers["X-Robots-Tag"] = "noindex"
    return HTMLResponse(page, headers={**headers, "Content-Language": edition.language})


def web_version(edition: Edition, settings: Settings) -> str:
    """An edition's HTML as a page: no recipient, no "view in browser", and a way around."""
    assert edition.id is not None
    language = edition.language
    page = fill(
        edition.html or "",
        {
            "greeting": html.escape(personalise.greeting(language, "")),
            "name": "",
            "email": _MARK["email"],
            "unsubscribe_url": _MARK["unsubscribe"],
            "preferences_url": _MARK["prefs"],
        },
    )
    # "You receive this email at ..." says nothing true in a browser.
    # (The address may sit in a <bdi>: the paragraph is matched up to its own </p>.)
    page = re.sub(
        rf"<p\b[^>]*>(?:(?!</p>).)*?{_MARK['email']}(?:(?!</p>).)*</p>", "", page, flags=re.DOTALL
    )
    page = page.replace(_MARK["email"], "")
    # Where the email had the recipient's own links, say where to find them.
    instructions = html.escape(i18n.words(language).gettext(WEB_VERSION_NOTE))
    marks = f"{_MARK['prefs']}|{_MARK['unsubscribe']}"
    page, replaced = re.subn(
        rf"<p\b[^>]*>(?:(?!</p>).)*?(?:{marks})(?:(?!</p>).)*</p>",
        f'<p style="margin:0;">{instructions}</p>',
        page,
        count=1,
        flags=re.DOTALL,
    )
    page = re.sub(rf'<a\b[^>]*href="(?:{marks})"[^>]*>(.*?)</a>', r"\1", page, flags=re.DOTALL)
    if not replaced:
        page = page.replace("</body>", f"<p>{instructions}</p></body>", 1)
    # No link to this very page inside it.
    self_url = re.escape(html.escape(links.archive_url(settings, edition.id)))
    page = re.sub(rf'<a\b[^>]*href="{self_url}"[^>]*>.*?</a>', "", page, flags=re.DOTALL)
    nav = _navigation(edition)
    return re.sub(r"(<body\b[^>]*>)", lambda match: match.group(1) + nav, page, count=1)


def _navigation(edition: Edition) -> str:
    """The archive's way around, placed at the top of the body."""
    language = edition.language

    def link(path: str, label: str) -> str:
        text = html.escape(i18n.words(language).gettext(label))
        return f'<a href="{html.escape(path)}">{text}</a>'

    parts = [
        link(f"/archive/?lang={language}", ARCHIVE),
        link(f"/?lang={language}", SUBSCRIBE),
    ]
    nav = (
        f'<nav aria-label="{html.escape(i18n.words(language).gettext(ARCHIVE))}" '
        'style="max-width:600px;margin:0 auto;padding:12px 24px;font:15px Arial,sans-serif;">'
        + " &middot; ".join(parts)
        + "</nav>"
    )
    return nav
