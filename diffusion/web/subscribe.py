"""The subscribe page: the form, and the request it records and mails to confirm."""

import logging
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from diffusion import db, i18n, links, subscriptions, validate
from diffusion.errors import InvalidInput
from diffusion.i18n import N_
from diffusion.subscriptions import KnownKeys, check_subscriber
from diffusion.web.base import (
    Web,
    choose_language,
    csrf_refused,
    csrf_valid,
    message_page,
    person_id,
    rate_limited,
    render_page,
    web_of,
)
from diffusion.web.choices import chosen_key, picked, themes_in_use
from diffusion.web.confirmation import Confirmation, confirmation_for, send_confirmation
from diffusion.web.forms import audience_choices, form_choices, form_error, form_lists, known_themes

log = logging.getLogger("diffusion.web")


async def subscribe_form(request: Request) -> Response:
    web = web_of(request)
    language = choose_language(request, web.settings)
    values = {
        "email": "",
        "name": "",
        "audience": "public",
        "key": "",
        "language": language,
        "sectors": [],
        "themes": [],
        "cadence": "monthly",
    }
    return await _subscribe_page(request, language, values)


async def _subscribe_page(
    request: Request, language: str, values: dict[str, Any], error: str | None = None
) -> Response:
    lists = await run_in_threadpool(form_lists, web_of(request), language)
    return render_page(
        request,
        "subscribe.html",
        language,
        N_("Subscribe to the newsletter"),
        status=400 if error else 200,
        values=values,
        audiences=audience_choices(web_of(request), language),
        error=error,
        picked=picked(web_of(request).rules, values["audience"], values["key"]),
        **lists,
    )


async def subscribe(request: Request) -> Response:
    web = web_of(request)
    form = await request.form()
    language = choose_language(request, web.settings, form=form)
    if not csrf_valid(request, form):
        return csrf_refused(request, language)
    audience = str(form.get("audience") or "public")
    values = {
        "email": str(form.get("email") or "").strip(),
        "name": str(form.get("name") or "").strip()[:200],
        "audience": audience,
        "key": chosen_key(form, web.rules, audience),
        **form_choices(form),
    }
    checked_values = {**values, "page_language": language}
    client = request.client.host if request.client else "unknown"
    if not web.per_client.allow(client):
        return rate_limited(request, language)
    try:
        with validate.in_field("email"):
            address = validate.subscriber_email(values["email"])
        if values["language"] not in web.settings.languages:
            raise InvalidInput(f"language {values['language']!r}: not offered", field="language")
    except InvalidInput as exc:
        error = form_error(web, language, exc, audience)
        return await _subscribe_page(request, language, values, error=error)
    if not web.per_address.allow(address):
        return rate_limited(request, language)
    try:
        await run_in_threadpool(_check, web, values)
    except InvalidInput as exc:
        error = form_error(web, language, exc, audience)
        return await _subscribe_page(request, language, values, error=error)
    response = message_page(
        request,
        language,
        N_("Check your inbox"),
        i18n.words(language).gettext(
            "If %(email)s can receive the newsletter, a message with a confirmation link is on "
            "its way. The link is valid for %(days)s days. Nothing is sent until you confirm.",
            email=address,
            days=web.settings.subscribe.confirm_token_days,
        ),
    )
    # Recorded and mailed after the answer, known address or not: the answer and its timing
    # say nothing of the address.
    response.background = BackgroundTask(_record_and_send, web, checked_values, datetime.now(UTC))
    return response


def _check(web: Web, values: dict[str, Any]) -> None:
    """The form's values validated without looking the address up: the same work for any."""
    with Session(web.engine) as session:
        keys = KnownKeys.read(session, web.rules)
        checked = check_subscriber(keys, values)
        known_themes(checked["themes"], themes_in_use(session, keys.directory))


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
                links.preferences_url(web.settings, person_id(person)),
                already=True,
            )
        return confirmation_for(web, found.person, wish, now)


async def _record_and_send(web: Web, values: dict[str, Any], now: datetime) -> None:
    """After the answer: record the request, then mail the address."""
    try:
        confirmation = await run_in_threadpool(
            db.once_more_on_conflict, _subscribe, web, values, now
        )
    except InvalidInput as exc:  # checked before the answer: only a race can get here
        log.error("subscription request for %s not recorded: %s", values["email"], exc)
        return
    await send_confirmation(web.settings, confirmation)
