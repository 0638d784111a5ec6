"""The confirm page: a signed link applies the request it carries."""

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from diffusion import db, i18n, subscriptions
from diffusion.errors import InvalidInput, InvalidToken
from diffusion.i18n import N_
from diffusion.models import Person
from diffusion.select.directory import read_directory
from diffusion.tokens import make_token
from diffusion.web.base import (
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
    web = web_of(request)
    form = await request.form() if request.method == "POST" else None
    token = request.path_params["token"]
    try:
        person, claims = await run_in_threadpool(person_of, web, "confirm", token)
        issued_at = _issued_at(claims)
    except InvalidToken:
        person = None
    wish = await run_in_threadpool(_wish, web, person, claims) if person is not None else None
    if person is None or wish is None or subscriptions.spent(person, issued_at):
        return invalid_link(request, choose_language(request, web.settings, form=form))
    language = choose_language(request, web.settings, wish.language, form=form)
    status = await run_in_threadpool(_holds, web, person_id(person), wish)
    if status is None:
        if form is None:
            return render_page(
                request,
                "confirm.html",
                language,
                N_("Confirm your subscription"),
                email=person.email,
            )
        if not csrf_valid(request, form):
            return csrf_refused(request, language)
        try:
            status = await run_in_threadpool(
                _confirm, web, person_id(person), wish, issued_at, language, datetime.now(UTC)
            )
        except subscriptions.Suppressed:
            return invalid_link(request, language)
    preferences = make_token(web.secret, "preferences", person_id(person))
    waits = status == "awaiting_approval"
    words = i18n.words(language)
    return message_page(
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
