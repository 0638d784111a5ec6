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
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from diffusion import db, i18n, links, render, subscriptions, validate
from diffusion.audiences import RoutingRules, load_rules, read_directory
from diffusion.config import Settings
from diffusion.errors import DeliveryError, InvalidInput, InvalidToken
from diffusion.i18n import N_, direction
from diffusion.models import AUDIENCES, CADENCES, SECTORS, Edition, Person, Subscription
from diffusion.subscriptions import check_subscriber
from diffusion.tokens import make_token, read_token
from diffusion.vocabulary import audience_label, labelled, sector_name
from diffusion.web import archive, pages
from diffusion.web.headers import SecurityHeaders
from diffusion.web.limits import BodyLimit, row_id_in_range
from diffusion.web.protection import (
    CSRF_FIELD,
    RateLimiter,
    csrf_cookie_name,
    csrf_ok,
    csrf_token,
    new_csrf_cookie,
    usable_cookie,
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
    def secret(self) -> tuple[str, ...]:
        """The signing keys, current first: the current one signs, every one verifies."""
        return self.settings.signing_keys()

    @property
    def csrf_cookie(self) -> str:
        return csrf_cookie_name(self.settings.base_url.startswith("https://"))


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
    cookie = usable_cookie(request.cookies.get(web.csrf_cookie))
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
            web.csrf_cookie,
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
    web = _web(request)
    return csrf_ok(web.secret, request.cookies.get(web.csrf_cookie), form.get(CSRF_FIELD))


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
    return _page(
        request,
        "subscribe.html",
        language,
        N_("Subscribe to the newsletter"),
        status=400 if error else 200,
        values=values,
        audiences=_audience_choices(_web(request), language),
        error=error,
    )


def _audience_choices(web: Web, language: str) -> list[tuple[str, str]]:
    """The audiences of the forms, each saying whether it needs an editor's approval."""
    choices = []
    for code in AUDIENCES:
        label = audience_label(code, language)
        if code in web.rules.audiences and subscriptions.needs_approval(web.rules, code):
            label = i18n.words(language).pgettext(
                "audience", "%(audience)s (needs an editor's approval)", audience=label
            )
        choices.append((code, label))
    return choices


@dataclass(frozen=True)
class Confirmation:
    """Who gets which message: a link to confirm, or (already subscribed) to preferences."""

    email: str
    language: str
    url: str
    already: bool = False


def _confirmation(
    web: Web, person: Person, wish: subscriptions.Request, now: datetime
) -> Confirmation:
    """The confirmation of `wish`, mailed to the person: only it can apply the request."""
    url = links.confirm_url(web.settings, _id(person), request=wish.claims(), issued_at=now)
    return Confirmation(person.email, wish.language or person.language, url)


def _subscribe(web: Web, values: dict[str, Any], now: datetime) -> Confirmation:
    """Record a request and say what to send to the address.

    Nothing stored changes for a known address (pending, active, unsubscribed...): it gets a
    confirmation of this new request, and only that confirmation changes anything. An address
    that already holds this very subscription gets its preferences link instead.
    """
    with db.session_scope(web.engine) as session:
        checked = check_subscriber(session, values, rules=web.rules)
        wish = subscriptions.Request.of(checked)
        origin = subscriptions.Origin.web(str(values.get("page_language", "")), "subscribe")
        found = subscriptions.request(session, wish, origin=origin, now=now)
        if found.already:
            person = found.person
            return Confirmation(
                person.email,
                person.language,
                links.preferences_url(web.settings, _id(person)),
                already=True,
            )
        return _confirmation(web, found.person, wish, now)


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
    checked_values = {**values, "page_language": language}
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
    try:
        await run_in_threadpool(_check, web, values)
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
    # Recorded and mailed after the answer, known address or not: the answer and its timing
    # say nothing of the address.
    response.background = BackgroundTask(_record_and_send, web, checked_values, datetime.now(UTC))
    return response


def _check(web: Web, values: dict[str, Any]) -> None:
    """The form's values validated without looking the address up: the same work for any."""
    with Session(web.engine) as session:
        check_subscriber(session, values, rules=web.rules)


async def _record_and_send(web: Web, values: dict[str, Any], now: datetime) -> None:
    """After the answer: record the request, then mail the address."""
    try:
        confirmation = await run_in_threadpool(
            db.once_more_on_conflict, _subscribe, web, values, now
        )
    except InvalidInput as exc:  # checked before the answer: only a race can get here
        log.error("subscription request for %s not recorded: %s", values["email"], exc)
        return
    await _send_confirmation(web.settings, confirmation)


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


def _person(web: Web, purpose: str, token: str) -> tuple[Person | None, dict[str, Any]]:
    """The person a token names, and its claims; InvalidToken if tampered with or expired.

    People's ids are never reused, so a link made for someone removed names nobody.
    """
    max_age = web.settings.confirm_token_days * 86400 if purpose == "confirm" else None
    claims = read_token(web.secret, purpose, token, max_age)
    with Session(web.engine, expire_on_commit=False) as session:
        person = session.get(Person, claims["sub"])
    return person, claims


def _issued_at(claims: dict[str, Any]) -> datetime:
    try:
        issued = datetime.fromisoformat(str(claims.get("at")))
    except ValueError as exc:
        raise InvalidToken("this confirm link is not valid") from exc
    return issued if issued.tzinfo else issued.replace(tzinfo=UTC)


def _wish(web: Web, person: Person, claims: dict[str, Any]) -> subscriptions.Request | None:
    """The request a confirmation link carries, or None when it cannot be used.

    A link mailed before people had several subscriptions carries no request: it confirms the
    person's pending subscription, as long as nothing happened to them since it was made.
    """
    if "req" in claims:
        try:
            return subscriptions.Request.from_claims(person.email, claims["req"])
        except InvalidInput:
            return None
    if person.status != "pending" or claims.get("at") != person.status_changed_at.isoformat():
        return None
    with Session(web.engine) as session:
        pending = [
            s for s in subscriptions.subscriptions_of(session, person) if s.status == "pending"
        ]
    if not pending:
        return None
    first = pending[0]
    return subscriptions.Request(
        email=person.email,
        name=person.name,
        language=person.language,
        audience=first.audience,
        key=first.key,
        sectors=tuple(first.sectors),
        themes=tuple(first.themes),
        regions=tuple(first.regions),
        cadence=first.cadence,
    )


def _holds(web: Web, person_id: int, wish: subscriptions.Request) -> str | None:
    """The status of the person's subscription to what `wish` asks for, if already held."""
    with Session(web.engine) as session:
        person = session.get(Person, person_id)
        return None if person is None else subscriptions.holds(session, person, wish)


def _confirm(
    web: Web,
    person_id: int,
    wish: subscriptions.Request,
    issued_at: datetime,
    language: str,
    now: datetime,
) -> str:
    """Apply a confirmed request; returns the subscription's status (active or waiting)."""
    with db.session_scope(web.engine) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise InvalidToken("this link names no stored subscription")
        subscription = subscriptions.confirm(
            session,
            person,
            wish,
            rules=web.rules,
            directory=read_directory(session),
            origin=subscriptions.Origin.web(language, "confirm"),
            now=now,
            issued_at=issued_at,
        )
        return subscription.status


async def confirm(request: Request) -> Response:
    web = _web(request)
    form = await request.form() if request.method == "POST" else None
    token = request.path_params["token"]
    try:
        person, claims = await run_in_threadpool(_person, web, "confirm", token)
        issued_at = _issued_at(claims)
    except InvalidToken:
        person = None
    wish = await run_in_threadpool(_wish, web, person, claims) if person is not None else None
    if person is None or wish is None or subscriptions.spent(person, issued_at):
        return _invalid_link(request, choose_language(request, web.settings, form=form))
    language = choose_language(request, web.settings, wish.language, form=form)
    status = await run_in_threadpool(_holds, web, _id(person), wish)
    if status is None:
        if form is None:
            return _page(
                request,
                "confirm.html",
                language,
                N_("Confirm your subscription"),
                email=person.email,
            )
        if not _csrf_valid(request, form):
            return _csrf_refused(request, language)
        try:
            status = await run_in_threadpool(
                _confirm, web, _id(person), wish, issued_at, language, datetime.now(UTC)
            )
        except subscriptions.Suppressed:
            return _invalid_link(request, language)
    preferences = make_token(web.secret, "preferences", _id(person))
    waits = status == "awaiting_approval"
    words = i18n.words(language)
    return _message(
        request,
        language,
        N_("Confirmed, awaiting approval") if waits else N_("Subscription confirmed"),
        words.gettext(
            "Thank you: %(email)s is confirmed. This subscription receives items that are not "
            "public, so an editor approves it before you receive its newsletter.",
            email=person.email,
        )
        if waits
        else words.gettext(
            "Thank you: %(email)s will receive the next edition.", email=person.email
        ),
        link=f"/preferences/{preferences}?lang={language}",
        link_text=words.gettext("Change your preferences"),
    )


def _id(person: Person) -> int:
    if person.id is None:
        raise InvalidToken("this link names no stored subscription")
    return person.id


def _subscription_label(language: str, subscription: Subscription) -> str:
    label = audience_label(subscription.audience, language)
    if not subscription.key:
        return label
    key = i18n.isolate(subscription.key) if direction(language) == "rtl" else subscription.key
    return labelled(i18n.words(language), label, key)


def _save_preferences(
    web: Web, person_id: int, subscription_id: int | None, values: dict[str, Any], now: datetime
) -> Person:
    """The person's language, and a subscription's narrowing and cadence when one is named
    (or when they hold only one: the form of a single subscription names none)."""
    with validate.in_field("language"):
        language = validate.language(values["language"]) if values["language"] else None
        if language is not None and language not in web.settings.languages:
            raise InvalidInput(f"language {language!r}: not offered here")
    narrowing = None
    if values.get("narrowing"):
        with validate.in_field("sectors"):
            sectors = validate.unique(validate.sector(code) for code in values["sectors"])
        with validate.in_field("themes"):
            themes = validate.unique(
                validate.theme(t) for t in validate.split_list(values["themes"])
            )
        with validate.in_field("cadence"):
            cadence = validate.cadence(values["cadence"])
        narrowing = {"sectors": sectors, "themes": themes, "cadence": cadence}
    with db.session_scope(web.engine) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise InvalidToken("this preferences link names no stored subscription")
        held = [
            s
            for s in subscriptions.subscriptions_of(session, person)
            if s.status in subscriptions.LIVE
        ]
        chosen = next((s for s in held if s.id == subscription_id), None)
        if chosen is None and subscription_id is None and len(held) == 1:
            chosen = held[0]
        subscriptions.change(
            session,
            person,
            origin=subscriptions.Origin.web(language or person.language, "preferences"),
            now=now,
            language=language,
            subscription=chosen if narrowing is not None else None,
            values=narrowing,
        )
        return person


def _leave(web: Web, person_id: int, subscription_id: int, language: str, now: datetime) -> str:
    """The person leaves one subscription; returns how the page names it."""
    with db.session_scope(web.engine) as session:
        person = session.get(Person, person_id)
        subscription = session.get(Subscription, subscription_id)
        if person is None or subscription is None or subscription.person_id != person.id:
            raise InvalidToken("this subscription is not yours")
        subscriptions.leave(
            session,
            person,
            subscription,
            origin=subscriptions.Origin.web(language, "preferences"),
            now=now,
        )
        return _subscription_label(language, subscription)


def _ask_to_add(web: Web, person_id: int, values: dict[str, Any], now: datetime) -> Confirmation:
    """A request for one more subscription, from the preferences page: confirmed by email."""
    with Session(web.engine) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise InvalidToken("this preferences link names no stored subscription")
        checked = check_subscriber(
            session,
            {**values, "email": person.email, "name": person.name, "language": person.language},
            rules=web.rules,
        )
    return _confirmation(web, person, subscriptions.Request.of(checked), now)


def _view(web: Web, person_id: int, language: str) -> tuple[Person, list[dict[str, Any]]]:
    with Session(web.engine, expire_on_commit=False) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise InvalidToken("this preferences link names no stored subscription")
        held = subscriptions.subscriptions_of(session, person)
    return person, [
        {
            "id": s.id,
            "label": _subscription_label(language, s),
            "status": s.status,
            "status_label": _status_label(language, s.status),
            "values": {
                "sectors": list(s.sectors),
                "themes": ", ".join(s.themes),
                "cadence": s.cadence,
            },
        }
        for s in held
    ]


def _status_label(language: str, status: str) -> str:
    """A subscription's status as its holder reads it on the preferences page."""
    words = i18n.words(language)
    labels = {
        "active": words.pgettext("subscription status", "active"),
        "awaiting_approval": words.pgettext("subscription status", "awaiting an editor's approval"),
        "pending": words.pgettext("subscription status", "not confirmed yet"),
        "left": words.pgettext("subscription status", "left"),
    }
    return labels.get(status, status)


def _number(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


async def preferences(request: Request) -> Response:
    web = _web(request)
    form = await request.form() if request.method == "POST" else None
    token = request.path_params["token"]
    try:
        person, _claims = await run_in_threadpool(_person, web, "preferences", token)
    except InvalidToken:
        person = None
    if person is None:
        return _invalid_link(request, choose_language(request, web.settings, form=form))
    language = choose_language(request, web.settings, person.language, form=form)
    error, saved, notice = None, False, None
    background = None
    add_values = {"audience": "public", "key": ""}
    if form is not None:
        if not _csrf_valid(request, form):
            return _csrf_refused(request, language)
        action = str(form.get("action") or "save")
        subscription_id = _number(form.get("subscription"))
        now = datetime.now(UTC)
        try:
            if action == "leave" and subscription_id is not None:
                what = await run_in_threadpool(
                    _leave, web, _id(person), subscription_id, language, now
                )
                notice = i18n.words(language).gettext(
                    "You left %(what)s; your other subscriptions are unchanged.", what=what
                )
            elif action == "add" and not web.per_address.allow(person.email):
                return _rate_limited(request, language)
            elif action == "add":
                add_values = {
                    "audience": str(form.get("audience") or "public"),
                    "key": str(form.get("key") or "").strip(),
                    "cadence": str(form.get("cadence") or "monthly"),
                }
                confirmation = await run_in_threadpool(
                    _ask_to_add, web, _id(person), add_values, now
                )
                background = BackgroundTask(_send_confirmation, web.settings, confirmation)
                notice = i18n.words(language).gettext(
                    "A link to confirm this subscription is on its way to %(email)s. Nothing "
                    "changes until you confirm.",
                    email=person.email,
                )
            else:
                values = {
                    **_choices(form),
                    "language": str(form.get("language") or ""),
                    "narrowing": "cadence" in form,
                }
                person = await run_in_threadpool(
                    _save_preferences, web, _id(person), subscription_id, values, now
                )
                saved = True
                # The page answers in the language just chosen: it is the latest wish.
                language = person.language
        except InvalidInput as exc:
            error = _form_error(language, exc)
        except InvalidToken:
            return _invalid_link(request, language)
    shown, held = await run_in_threadpool(_view, web, _id(person), language)
    unsubscribe = make_token(web.secret, "unsubscribe", _id(shown))
    response = _page(
        request,
        "preferences.html",
        language,
        N_("Your preferences"),
        status=400 if error else 200,
        email=shown.email,
        values={"language": shown.language},
        subscriptions=held,
        add_values=add_values,
        audiences=_audience_choices(web, language),
        saved=saved,
        notice=notice,
        error=error,
        unsubscribe_link=f"/unsubscribe/{unsubscribe}?lang={language}",
    )
    response.background = background
    return response


def _unsubscribe(web: Web, person_id: int, cadence: str | None, origin: str) -> None:
    """Leave every subscription the email covered: all of them, or those of its cadence."""
    with db.session_scope(web.engine) as session:
        person = session.get(Person, person_id)
        if person is None:
            return
        chosen = [
            s
            for s in subscriptions.subscriptions_of(session, person)
            if s.status in subscriptions.LIVE and cadence in (None, s.cadence)
        ]
        subscriptions.unsubscribe(
            session,
            person,
            origin=subscriptions.Origin("web", origin),
            now=datetime.now(UTC),
            subscriptions=chosen,
        )


async def unsubscribe(request: Request) -> Response:
    web = _web(request)
    form = await request.form() if request.method == "POST" else None
    one_click = form is not None and form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE
    token = request.path_params["token"]
    try:
        person, _claims = await run_in_threadpool(_person, web, "unsubscribe", token)
    except InvalidToken:
        if one_click:
            return PlainTextResponse("This unsubscribe link is not valid.\n", status_code=400)
        return _invalid_link(request, choose_language(request, web.settings, form=form))
    language = choose_language(
        request, web.settings, person.language if person else None, form=form
    )
    email = person.email if person else ""
    if form is None:
        if person is None or person.status == "unsubscribed":
            return _unsubscribed(request, language, email)
        return _page(request, "unsubscribe.html", language, N_("Unsubscribe"), email=email)
    # RFC 8058: the one-click POST carries no CSRF token and gets 200, never a redirect.
    if not one_click and not _csrf_valid(request, form):
        return _csrf_refused(request, language)
    if person is not None:
        cadence = request.query_params.get("cadence")
        origin = "one-click unsubscribe" if one_click else f"unsubscribe page in {language}"
        await run_in_threadpool(
            _unsubscribe, web, _id(person), cadence if cadence in CADENCES else None, origin
        )
        log.info("person %s unsubscribed%s", person.id, " (one-click)" if one_click else "")
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
    # The web version of everyone's email: no recipient, and the archive's way around.
    html = archive.web_version(edition, web.settings)
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


def webhook_routes() -> list[Route]:
    from diffusion.web.webhooks import ROUTES  # imported late: webhooks imports this module

    return ROUTES


def create_app(settings: Settings, engine: Engine | None = None) -> Starlette:
    """The ASGI application of `diffusion serve`; it disposes of the engine it creates.

    Raises TemplateError (naming the template and line) when an email template does not
    compile, so that the service does not start only to fail at the next build.
    """
    render.check_templates(settings)
    settings.signing_keys()  # an empty, short or missing key stops the start, naming its source
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
            Route("/archive/", archive.archive_index, methods=["GET"]),
            Route("/archive/{edition_id:int}", archive_edition, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            *webhook_routes(),
            # Items, news pages and the feed files (from memory, with ETags): web/pages.py.
            *pages.routes(),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(
                SecurityHeaders,
                templates=TEMPLATES_DIR,
                https=settings.base_url.startswith("https://"),
            ),
            Middleware(
                BodyLimit,
                max_bytes=settings.web_max_body_bytes,
                webhook_max_bytes=settings.web_webhook_max_body_bytes,
            ),
        ],
    )
    app.state.web = web
    app.state.feed_files = pages.FeedFiles(settings.feeds_dir)
    return app
