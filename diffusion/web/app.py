"""The web pages: subscribe, confirm, preferences, unsubscribe, feeds, archive and health."""

import logging
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from diffusion import db, i18n, links, render, validate
from diffusion.audiences import RoutingRules, load_rules
from diffusion.collect.subscribers import add_subscriber, check_subscriber, find_subscriber
from diffusion.config import Settings
from diffusion.errors import DeliveryError, InvalidInput, InvalidToken
from diffusion.i18n import N_, direction, format_day
from diffusion.models import AUDIENCES, SECTORS, Edition, Subscriber
from diffusion.personalise import fill
from diffusion.tokens import make_token, read_token
from diffusion.vocabulary import audience_label, sector_name
from diffusion.web.protection import (
    CSRF_COOKIE,
    CSRF_FIELD,
    RateLimiter,
    csrf_ok,
    csrf_token,
    new_csrf_cookie,
)

log = logging.getLogger("diffusion.web")
mimetypes.add_type("application/rss+xml", ".rss")
mimetypes.add_type("application/atom+xml", ".atom")

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# The audiences whose sent editions are listed in the public archive and open to anyone; the
# other editions are shown only to whoever has their signed "view in browser" link.
LISTED_AUDIENCES = ("public",)
# RFC 8058: the body a mail client POSTs to the List-Unsubscribe URL.
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
# Token pages leak nothing to the sites they link to, and are not framed by others.
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass
class Web:
    """What the handlers share: settings, engine, templates and the in-memory rate limits."""

    settings: Settings
    engine: Engine
    templates: Jinja2Templates
    per_address: RateLimiter
    per_client: RateLimiter
    rules: RoutingRules  # the editors' routing rules: which audience keys exist

    @property
    def secret(self) -> str:
        return self.settings.signing_key()


def _web(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def choose_language(
    request: Request, settings: Settings, *preferred: str | None, form: FormData | None = None
) -> str:
    """?lang=, then the form's page language, then `preferred`, then Accept-Language."""
    allowed = settings.languages
    candidates = [request.query_params.get("lang")]
    if form is not None:
        value = form.get("lang")
        candidates.append(value if isinstance(value, str) else None)
    candidates.extend(preferred)
    for candidate in candidates:
        if candidate in allowed:
            return str(candidate)
    ranked: list[tuple[float, str]] = []
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:  # q=0 says "not this one" (RFC 9110)
            ranked.append((quality, tag.split("-")[0].lower()))
    for _quality, language in sorted(ranked, key=lambda pair: -pair[0]):
        if language in allowed:
            return language
    return settings.default_language


def _page(
    request: Request,
    template: str,
    language: str,
    title: str,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    """A page in `language`; `title` is a msgid (marked with N_), translated here."""
    web = _web(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    fresh = cookie is None
    cookie = cookie or new_csrf_cookie()
    words = i18n.words(language)

    response = web.templates.TemplateResponse(
        request,
        template,
        {
            "lang": language,
            "dir": direction(language),
            "_": words.gettext,
            "gettext": words.gettext,
            "ngettext": words.ngettext,
            "pgettext": words.pgettext,
            "direction": direction,
            "title": words.gettext(title),
            "organisation": i18n.newsletter_name(web.settings, language),
            # The picker: each language in its own name, whatever the page's language.
            "languages": [(code, i18n.own_name(code)) for code in web.settings.languages],
            "sectors": [(code, sector_name(code, language)) for code in SECTORS],
            "csrf_token": csrf_token(web.secret, cookie),
            **context,
        },
        status_code=status,
    )
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Language"] = language
    if fresh:
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            httponly=True,
            samesite="lax",
            secure=web.settings.base_url.startswith("https://"),
        )
    return response


def _message(
    request: Request,
    language: str,
    title: str,
    message: str,
    *,
    status: int = 200,
    error: bool = False,
    link: str | None = None,
    link_text: str | None = None,
) -> Response:
    return _page(
        request,
        "message.html",
        language,
        title,
        status=status,
        message=message,
        error=error,
        link=link,
        link_text=link_text,
    )


def _invalid_link(request: Request, language: str) -> Response:
    return _message(
        request,
        language,
        N_("This link cannot be used"),
        i18n.words(language).gettext(
            "The link is not valid, has already been used or has expired. You can subscribe "
            "again from the subscription page."
        ),
        status=400,
        error=True,
        link="/?lang=" + language,
        link_text=i18n.words(language).gettext("Go to the subscription page"),
    )


def _csrf_refused(request: Request, language: str) -> Response:
    return _message(
        request,
        language,
        N_("This form has expired"),
        i18n.words(language).gettext(
            "For your security the form could not be accepted. Go back, reload the page and "
            "submit it again (cookies must be allowed for this site)."
        ),
        status=403,
        error=True,
    )


def _csrf_valid(request: Request, form: FormData) -> bool:
    return csrf_ok(_web(request).secret, request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD))


def _choices(form: FormData) -> dict[str, Any]:
    """The preference fields of a form, as text, to validate and to show back."""
    return {
        "language": str(form.get("language") or ""),
        "sectors": [str(value) for value in form.getlist("sectors")],
        "themes": str(form.get("themes") or ""),
        "cadence": str(form.get("cadence") or "monthly"),
    }


# Subscribe ------------------------------------------------------------------------------------


async def subscribe_form(request: Request) -> Response:
    web = _web(request)
    language = choose_language(request, web.settings)
    values = {
        "email": "",
        "name": "",
        "audience": "public",
        "key": "",
        "language": language,
        "sectors": [],
        "themes": "",
        "cadence": "monthly",
    }
    return _subscribe_page(request, language, values)


def _form_error(language: str, error: InvalidInput) -> str:
    """What is wrong with the form, in the page's language.

    The validators speak English, naming the value at fault; a page in another language says
    what is wrong with the field in its own words, where the catalogue has them.
    """
    if language != "en" and error.field:
        return _field_error(language, error.field) or str(error)
    return str(error)


def _field_error(language: str, field: str) -> str | None:
    """What is wrong with one form field, said for pages not in English."""
    words = i18n.words(language)
    errors = {
        "email": words.gettext(
            "This email address cannot be used. Check it: an address looks like "
            "name@domain.org, and accented letters are not yet accepted before the @."
        ),
        "language": words.gettext("This language is not offered here."),
        "audience": words.gettext("Choose an audience from the list."),
        "key": words.gettext(
            "We do not know this organisation, Sector, office or country for the chosen "
            "audience. For an NGO, its short name (e.g. ifla); for a Sector, ED, SC, SHS, CLT "
            "or CI; for a country, its code (e.g. CO)."
        ),
        "sectors": words.gettext("Choose the Sectors from the list: ED, SC, SHS, CLT or CI."),
        "themes": words.gettext(
            "Themes are words separated by commas, with no other signs (e.g. inclusion, "
            "lifelong learning)."
        ),
        "cadence": words.gettext("Choose a monthly newsletter or a weekly digest."),
    }
    return errors.get(field)


def _subscribe_page(
    request: Request, language: str, values: dict[str, Any], error: str | None = None
) -> Response:
    audiences = [(code, audience_label(code, language)) for code in AUDIENCES]
    return _page(
        request,
        "subscribe.html",
        language,
        N_("Subscribe to the newsletter"),
        status=400 if error else 200,
        values=values,
        audiences=audiences,
        error=error,
    )


@dataclass(frozen=True)
class Confirmation:
    """Who gets which message: a link to confirm, or (already subscribed) to preferences."""

    email: str
    language: str
    url: str
    already: bool = False


def _subscribe(web: Web, values: dict[str, Any], now: datetime) -> Confirmation:
    """Record a pending subscriber and say what to send to the address.

    An active address is left as it is, so that nobody can put someone else's subscription back
    to pending; it gets its preferences link instead. An unsubscribed or bounced address is
    re-activated only by its confirmation.
    """
    settings = web.settings
    with db.session_scope(web.engine) as session:
        checked = check_subscriber(session, values, rules=web.rules)
        existing = find_subscriber(session, checked["email"])
        if existing is not None and existing.status == "active":
            return Confirmation(
                existing.email,
                existing.language,
                links.preferences_url(settings, _id(existing)),
                already=True,
            )
        if existing is None or existing.status == "pending":
            subscriber = add_subscriber(session, **checked, now=now, status="pending")
        else:
            subscriber = existing
        url = links.confirm_url(
            settings, _id(subscriber), status_changed_at=subscriber.status_changed_at
        )
        return Confirmation(subscriber.email, subscriber.language, url)


def confirmation_message(settings: Settings, confirmation: Confirmation) -> EmailMessage:
    """The double opt-in message (or the "already subscribed" one), plain text, in the
    subscriber's language."""
    language = confirmation.language
    words = i18n.words(language)
    rtl = i18n.direction(language) == "rtl"
    fields = {
        "organisation": i18n.newsletter_name(settings, language),
        "email": i18n.isolate(confirmation.email) if rtl else confirmation.email,
        "days": settings.confirm_token_days,
        "url": confirmation.url,
    }
    message = EmailMessage()
    message["From"] = formataddr((i18n.sender_name(settings, language), settings.from_address))
    message["To"] = confirmation.email
    if confirmation.already:
        subject = words.gettext("Your subscription to %(organisation)s", **fields)
        body = words.gettext(
            "Hello,\n\nSomeone, probably you, asked to subscribe %(email)s to the newsletter of "
            "%(organisation)s. This address already receives it.\n\nTo change what you "
            "receive, how often or in which language, open this link:\n\n%(url)s\n\nIf you "
            "did not ask, ignore this message: nothing changes.\n",
            **fields,
        )
    else:
        subject = words.gettext("Confirm your subscription to %(organisation)s", **fields)
        body = words.gettext(
            "Hello,\n\nSomeone, probably you, asked to receive the newsletter of "
            "%(organisation)s at %(email)s.\n\nTo confirm, open this link (valid for %(days)s "
            "days) and press the button:\n\n%(url)s\n\nIf you did not ask for it, ignore "
            "this message: nothing will be sent to you.\n",
            **fields,
        )
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.from_address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message.set_content(body)
    message["Content-Language"] = language  # after set_content, which drops Content-* headers
    return message


async def _send_confirmation(settings: Settings, confirmation: Confirmation) -> None:
    from diffusion.deliver import send_one

    try:
        await send_one(settings, confirmation_message(settings, confirmation))
    except DeliveryError as exc:
        log.error("subscription message to %s not sent: %s", confirmation.email, exc)


async def subscribe(request: Request) -> Response:
    web = _web(request)
    form = await request.form()
    language = choose_language(request, web.settings, form=form)
    if not _csrf_valid(request, form):
        return _csrf_refused(request, language)
    values = {
        "email": str(form.get("email") or "").strip(),
        "name": str(form.get("name") or "").strip()[:200],
        "audience": str(form.get("audience") or "public"),
        "key": str(form.get("key") or "").strip(),
        **_choices(form),
    }
    client = request.client.host if request.client else "unknown"
    if not web.per_client.allow(client):
        return _rate_limited(request, language)
    try:
        with validate.in_field("email"):
            address = validate.subscriber_email(values["email"])
        if values["language"] not in web.settings.languages:
            raise InvalidInput(f"language {values['language']!r}: not offered", field="language")
    except InvalidInput as exc:
        return _subscribe_page(request, language, values, error=_form_error(language, exc))
    if not web.per_address.allow(address):
        return _rate_limited(request, language)
    now = datetime.now(UTC)
    try:
        confirmation = await run_in_threadpool(_subscribe, web, values, now)
    except InvalidInput as exc:
        return _subscribe_page(request, language, values, error=_form_error(language, exc))
    response = _message(
        request,
        language,
        N_("Check your inbox"),
        i18n.words(language).gettext(
            "If %(email)s can receive the newsletter, a message with a confirmation link is on "
            "its way. The link is valid for %(days)s days. Nothing is sent until you confirm.",
            email=address,
            days=web.settings.confirm_token_days,
        ),
    )
    # Sent after the answer, known address or not: the answer and its timing say nothing.
    response.background = BackgroundTask(_send_confirmation, web.settings, confirmation)
    return response


def _rate_limited(request: Request, language: str) -> Response:
    response = _message(
        request,
        language,
        N_("Too many requests"),
        i18n.words(language).gettext(
            "Too many subscription requests were made for this address or from your network. "
            "Please try again in an hour."
        ),
        status=429,
        error=True,
    )
    response.headers["Retry-After"] = "3600"
    return response


# Confirm, preferences, unsubscribe -----------------------------------------------------------


def _subscriber(web: Web, purpose: str, token: str) -> Subscriber | None:
    """The subscriber a token names; InvalidToken if tampered with or expired."""
    max_age = web.settings.confirm_token_days * 86400 if purpose == "confirm" else None
    claims = read_token(web.secret, purpose, token, max_age)
    with Session(web.engine, expire_on_commit=False) as session:
        subscriber = session.get(Subscriber, claims["sub"])
    if subscriber is None:
        return None
    # A confirmation link is spent once the subscription's status has changed since it was sent.
    if purpose == "confirm" and subscriber.status != "active":
        if claims.get("at") != subscriber.status_changed_at.isoformat():
            raise InvalidToken("this confirm link was already used")
    return subscriber


async def confirm(request: Request) -> Response:
    web = _web(request)
    form = await request.form() if request.method == "POST" else None
    token = request.path_params["token"]
    try:
        subscriber = await run_in_threadpool(_subscriber, web, "confirm", token)
    except InvalidToken:
        subscriber = None
    if subscriber is None:
        return _invalid_link(request, choose_language(request, web.settings, form=form))
    language = choose_language(request, web.settings, subscriber.language, form=form)
    if subscriber.status != "active":
        if form is None:
            return _page(
                request,
                "confirm.html",
                language,
                N_("Confirm your subscription"),
                email=subscriber.email,
            )
        if not _csrf_valid(request, form):
            return _csrf_refused(request, language)
        await run_in_threadpool(_set_status, web, subscriber.id, "active", datetime.now(UTC))
    preferences = make_token(web.secret, "preferences", _id(subscriber))
    return _message(
        request,
        language,
        N_("Subscription confirmed"),
        i18n.words(language).gettext(
            "Thank you: %(email)s will receive the next edition.", email=subscriber.email
        ),
        link=f"/preferences/{preferences}?lang={language}",
        link_text=i18n.words(language).gettext("Change your preferences"),
    )


def _id(subscriber: Subscriber) -> int:
    if subscriber.id is None:
        raise InvalidToken("this link names no stored subscription")
    return subscriber.id


def _set_status(web: Web, subscriber_id: int | None, status: str, now: datetime) -> None:
    with db.session_scope(web.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None or subscriber.status == status:
            return
        subscriber.status = status
        subscriber.status_changed_at = now
        if status == "active":
            subscriber.consent_at = now
            subscriber.soft_bounces = 0
        session.add(subscriber)


def _save_preferences(web: Web, subscriber_id: int, values: dict[str, Any]) -> Subscriber:
    with validate.in_field("language"):
        language = validate.language(values["language"])
        if language not in web.settings.languages:
            raise InvalidInput(f"language {language!r}: not offered here")
    with validate.in_field("sectors"):
        sectors = validate.unique(validate.sector(code) for code in values["sectors"])
    with validate.in_field("themes"):
        themes = validate.unique(validate.theme(t) for t in validate.split_list(values["themes"]))
    with validate.in_field("cadence"):
        cadence = validate.cadence(values["cadence"])
    with db.session_scope(web.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            raise InvalidToken("this preferences link names no stored subscription")
        subscriber.language = language
        subscriber.sectors = sectors
        subscriber.themes = themes
        subscriber.cadence = cadence
        session.add(subscriber)
        return subscriber


async def preferences(request: Request) -> Response:
    web = _web(request)
    form = await request.form() if request.method == "POST" else None
    token = request.path_params["token"]
    try:
        subscriber = await run_in_threadpool(_subscriber, web, "preferences", token)
    except InvalidToken:
        subscriber = None
    if subscriber is None:
        return _invalid_link(request, choose_language(request, web.settings, form=form))
    language = choose_language(request, web.settings, subscriber.language, form=form)
    values = {
        "language": subscriber.language,
        "sectors": list(subscriber.sectors),
        "themes": ", ".join(subscriber.themes),
        "cadence": subscriber.cadence,
    }
    error, saved = None, False
    if form is not None:
        if not _csrf_valid(request, form):
            return _csrf_refused(request, language)
        values = _choices(form)
        try:
            subscriber = await run_in_threadpool(_save_preferences, web, _id(subscriber), values)
        except InvalidInput as exc:
            error = _form_error(language, exc)
        else:
            saved = True
            # The page answers in the language just chosen: it is the latest wish.
            language = subscriber.language
            values["themes"] = ", ".join(subscriber.themes)
    unsubscribe = make_token(web.secret, "unsubscribe", _id(subscriber))
    return _page(
        request,
        "preferences.html",
        language,
        N_("Your preferences"),
        status=400 if error else 200,
        email=subscriber.email,
        values=values,
        saved=saved,
        error=error,
        unsubscribe_link=f"/unsubscribe/{unsubscribe}?lang={language}",
    )


async def unsubscribe(request: Request) -> Response:
    web = _web(request)
    form = await request.form() if request.method == "POST" else None
    one_click = form is not None and form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE
    token = request.path_params["token"]
    try:
        subscriber = await run_in_threadpool(_subscriber, web, "unsubscribe", token)
    except InvalidToken:
        if one_click:
            return PlainTextResponse("This unsubscribe link is not valid.\n", status_code=400)
        return _invalid_link(request, choose_language(request, web.settings, form=form))
    language = choose_language(
        request, web.settings, subscriber.language if subscriber else None, form=form
    )
    email = subscriber.email if subscriber else ""
    if form is None:
        if subscriber is None or subscriber.status == "unsubscribed":
            return _unsubscribed(request, language, email)
        return _page(request, "unsubscribe.html", language, N_("Unsubscribe"), email=email)
    # RFC 8058: the one-click POST carries no CSRF token and gets 200, never a redirect.
    if not one_click and not _csrf_valid(request, form):
        return _csrf_refused(request, language)
    if subscriber is not None:
        await run_in_threadpool(_set_status, web, subscriber.id, "unsubscribed", datetime.now(UTC))
        log.info("subscriber %s unsubscribed%s", subscriber.id, " (one-click)" if one_click else "")
    if one_click:
        return PlainTextResponse("Unsubscribed.\n", headers=SECURITY_HEADERS)
    return _unsubscribed(request, language, email)


def _unsubscribed(request: Request, language: str, email: str) -> Response:
    return _message(
        request,
        language,
        N_("You are unsubscribed"),
        i18n.words(language).gettext(
            "%(email)s will receive no more editions. You can subscribe again at any time.",
            email=email,
        ),
        link="/?lang=" + language,
        link_text=i18n.words(language).gettext("Go to the subscription page"),
    )


# Archive and health -----------------------------------------------------------------------------


def _listed_editions(web: Web) -> list[Edition]:
    with Session(web.engine) as session:
        return list(
            session.exec(
                select(Edition)
                .where(Edition.status == "sent", col(Edition.audience).in_(LISTED_AUDIENCES))
                .order_by(col(Edition.sent_at).desc(), col(Edition.id).desc())
                .limit(500)
            )
        )


async def archive_index(request: Request) -> Response:
    web = _web(request)
    language = choose_language(request, web.settings)
    editions = await run_in_threadpool(_listed_editions, web)
    listed = [
        {
            "id": edition.id,
            "subject": edition.subject or edition.period,
            "language": edition.language,
            "sent": i18n.words(language).gettext(
                "sent on %(day)s",
                day=format_day(edition.sent_at or edition.created_at, language),
            ),
        }
        for edition in editions
    ]
    return _page(
        request, "archive.html", language, N_("Archive of the newsletter"), editions=listed
    )


def _edition(web: Web, edition_id: int, signature: str | None) -> Edition | None:
    """A sent edition the request may see: a public one, or any with its link's signature."""
    with Session(web.engine) as session:
        edition = session.get(Edition, edition_id)
    if edition is None or edition.status not in ("sending", "sent"):
        return None
    if edition.audience in LISTED_AUDIENCES:
        return edition
    return edition if links.archive_signature_ok(web.settings, edition_id, signature) else None


async def archive_edition(request: Request) -> Response:
    web = _web(request)
    edition = await run_in_threadpool(
        _edition, web, request.path_params["edition_id"], request.query_params.get("sig")
    )
    # A non-public edition without its signature gets the answer of a missing one: 404.
    if edition is None:
        language = choose_language(request, web.settings)
        return _message(
            request,
            language,
            N_("Page not found"),
            i18n.words(language).gettext("There is no page at this address."),
            status=404,
            error=True,
        )
    # The web version of everyone's email: placeholders get neutral values, links go home.
    home = web.settings.base_url.rstrip("/") + "/"
    html = fill(
        edition.html,
        {
            "greeting": i18n.words(edition.language).gettext("Hello,"),
            "name": "",
            "email": "",
            "unsubscribe_url": home,
            "preferences_url": home,
        },
    )
    headers = dict(SECURITY_HEADERS)
    if edition.audience in LISTED_AUDIENCES:
        del headers["Cache-Control"]  # a public page may be cached; a signed one is not kept
    else:
        headers["X-Robots-Tag"] = "noindex"
    return HTMLResponse(html, headers={**headers, "Content-Language": edition.language})


def _database_ok(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return type(exc).__name__
    return None


async def healthz(request: Request) -> Response:
    problem = await run_in_threadpool(_database_ok, _web(request).engine)
    if problem:
        return JSONResponse({"status": "error", "database": problem}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


def create_app(settings: Settings, engine: Engine | None = None) -> Starlette:
    """The ASGI application of `diffusion serve`; it disposes of the engine it creates.

    Raises TemplateError (naming the template and line) when an email template does not
    compile, so that the service does not start only to fail at the next build.
    """
    render.check_templates(settings)
    own_engine = engine is None
    if engine is None:
        engine = db.engine_for(settings)
        db.require_schema(engine)
    settings.feeds_dir.mkdir(parents=True, exist_ok=True)
    web = Web(
        settings=settings,
        engine=engine,
        templates=Jinja2Templates(directory=TEMPLATES_DIR),
        per_address=RateLimiter(settings.subscribe_limit_per_address),
        per_client=RateLimiter(settings.subscribe_limit_per_client),
        rules=load_rules(settings.routing),
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if own_engine:
            web.engine.dispose()

    app = Starlette(
        routes=[
            Route("/", subscribe_form, methods=["GET"]),
            Route("/subscribe", subscribe_form, methods=["GET"]),
            Route("/subscribe", subscribe, methods=["POST"]),
            Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
            Route("/preferences/{token}", preferences, methods=["GET", "POST"]),
            Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
            Route("/archive/", archive_index, methods=["GET"]),
            Route("/archive/{edition_id:int}", archive_edition, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            # StaticFiles answers conditional requests with 304 and refuses paths outside.
            Mount("/feeds", StaticFiles(directory=settings.feeds_dir, check_dir=False)),
        ],
        lifespan=lifespan,
    )
    app.state.web = web
    return app
