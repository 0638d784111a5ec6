"""The unsubscribe page, and RFC 8058's one-click unsubscribe."""

import logging
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from diffusion import db, i18n, subscriptions
from diffusion.errors import InvalidToken
from diffusion.i18n import N_
from diffusion.models import CADENCES, Person
from diffusion.web.base import (
    SECURITY_HEADERS,
    Web,
    choose_language,
    csrf_refused,
    csrf_valid,
    invalid_link,
    message_page,
    person_id,
    person_of,
    render_page,
    web_of,
)

log = logging.getLogger("diffusion.web")
# RFC 8058: the body a mail client POSTs to the List-Unsubscribe URL.
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"


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
    web = web_of(request)
    form = await request.form() if request.method == "POST" else None
    one_click = form is not None and form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE
    token = request.path_params["token"]
    try:
        person, _claims = await run_in_threadpool(person_of, web, "unsubscribe", token)
    except InvalidToken:
        if one_click:
            return PlainTextResponse("This unsubscribe link is not valid.\n", status_code=400)
        return invalid_link(request, choose_language(request, web.settings, form=form))
    language = choose_language(
        request, web.settings, person.language if person else None, form=form
    )
    email = person.email if person else ""
    if form is None:
        if person is None or person.status == "unsubscribed":
            return _unsubscribed(request, language, email)
        return render_page(request, "unsubscribe.html", language, N_("Unsubscribe"), email=email)
    # RFC 8058: the one-click POST carries no CSRF token and gets 200, never a redirect.
    if not one_click and not csrf_valid(request, form):
        return csrf_refused(request, language)
    if person is not None:
        cadence = request.query_params.get("cadence")
        origin = "one-click unsubscribe" if one_click else f"unsubscribe page in {language}"
        await run_in_threadpool(
            _unsubscribe, web, person_id(person), cadence if cadence in CADENCES else None, origin
        )
        log.info("person %s unsubscribed%s", person.id, " (one-click)" if one_click else "")
    if one_click:
        return PlainTextResponse("Unsubscribed.\n", headers=SECURITY_HEADERS)
    return _unsubscribed(request, language, email)


def _unsubscribed(request: Request, language: str, email: str) -> Response:
    return message_page(
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
