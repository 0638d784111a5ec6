"""The preferences page: a person's language, their subscriptions, narrowing, leaving, adding."""

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from diffusion import db, i18n, subscriptions, validate
from diffusion.errors import InvalidInput, InvalidToken
from diffusion.i18n import N_
from diffusion.models import Person, Subscription
from diffusion.select.directory import Directory, read_directory
from diffusion.subscriptions import check_subscriber
from diffusion.tokens import make_token
from diffusion.web.base import (
    Web,
    choose_language,
    csrf_refused,
    csrf_valid,
    invalid_link,
    person_id,
    person_of,
    rate_limited,
    render_page,
    web_of,
)
from diffusion.web.choices import (
    chosen_key,
    key_lists,
    picked,
    subscribed_as,
    theme_options,
    themes_in_use,
)
from diffusion.web.confirmation import Confirmation, confirmation_for, send_confirmation
from diffusion.web.forms import audience_choices, form_choices, form_error, known_themes


def subscription_label(
    web: Web, language: str, subscription: Subscription, directory: Directory
) -> str:
    """What the subscription is, by name: `NGO partner: International Federation of ...`."""
    return subscribed_as(web.rules, subscription.audience, subscription.key, language, directory)


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
        if narrowing is not None:
            # A theme already held stays choosable, even once nothing carries it any more.
            in_use = themes_in_use(session, read_directory(session))
            known_themes(narrowing["themes"], in_use | set(chosen.themes if chosen else ()))
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
        return subscription_label(web, language, subscription, read_directory(session))


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
    return confirmation_for(web, person, subscriptions.Request.of(checked), now)


def _view(web: Web, person_id: int, language: str) -> tuple[Person, dict[str, Any]]:
    """The person, and what the page shows: their subscriptions and the lists to choose from."""
    with Session(web.engine, expire_on_commit=False) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise InvalidToken("this preferences link names no stored subscription")
        held = subscriptions.subscriptions_of(session, person)
        directory = read_directory(session)
        in_use = themes_in_use(session, directory)
    shown = [
        {
            "id": s.id,
            "label": subscription_label(web, language, s, directory),
            "status": s.status,
            "status_label": _status_label(language, s.status),
            "values": {"sectors": list(s.sectors), "themes": list(s.themes), "cadence": s.cadence},
            "theme_choices": theme_options(in_use | set(s.themes)),
        }
        for s in held
    ]
    return person, {"subscriptions": shown, "key_lists": key_lists(directory, language)}


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
    web = web_of(request)
    form = await request.form() if request.method == "POST" else None
    token = request.path_params["token"]
    try:
        person, _claims = await run_in_threadpool(person_of, web, "preferences", token)
    except InvalidToken:
        person = None
    if person is None:
        return invalid_link(request, choose_language(request, web.settings, form=form))
    language = choose_language(request, web.settings, person.language, form=form)
    error, saved, notice = None, False, None
    background = None
    add_values = {"audience": "public", "key": ""}
    if form is not None:
        if not csrf_valid(request, form):
            return csrf_refused(request, language)
        action = str(form.get("action") or "save")
        subscription_id = _number(form.get("subscription"))
        now = datetime.now(UTC)
        try:
            if action == "leave" and subscription_id is not None:
                what = await run_in_threadpool(
                    _leave, web, person_id(person), subscription_id, language, now
                )
                notice = i18n.words(language).gettext(
                    "You left %(what)s; your other subscriptions are unchanged.", what=what
                )
            elif action == "add" and not web.per_address.allow(person.email):
                return rate_limited(request, language)
            elif action == "add":
                audience = str(form.get("audience") or "public")
                add_values = {
                    "audience": audience,
                    "key": chosen_key(form, web.rules, audience),
                    "cadence": str(form.get("cadence") or "monthly"),
                }
                confirmation = await run_in_threadpool(
                    _ask_to_add, web, person_id(person), add_values, now
                )
                background = BackgroundTask(send_confirmation, web.settings, confirmation)
                notice = i18n.words(language).gettext(
                    "A link to confirm this subscription is on its way to %(email)s. Nothing "
                    "changes until you confirm.",
                    email=person.email,
                )
            else:
                values = {
                    **form_choices(form),
                    "language": str(form.get("language") or ""),
                    "narrowing": "cadence" in form,
                }
                person = await run_in_threadpool(
                    _save_preferences, web, person_id(person), subscription_id, values, now
                )
                saved = True
                # The page answers in the language just chosen: it is the latest wish.
                language = person.language
        except InvalidInput as exc:
            error = form_error(web, language, exc, add_values["audience"])
        except InvalidToken:
            return invalid_link(request, language)
    shown, lists = await run_in_threadpool(_view, web, person_id(person), language)
    unsubscribe = make_token(web.secret, "unsubscribe", person_id(shown))
    response = render_page(
        request,
        "preferences.html",
        language,
        N_("Your preferences"),
        status=400 if error else 200,
        email=shown.email,
        values={"language": shown.language},
        **lists,
        add_values=add_values,
        add_picked=picked(web.rules, add_values["audience"], add_values["key"]),
        audiences=audience_choices(web, language),
        saved=saved,
        notice=notice,
        error=error,
        unsubscribe_link=f"/unsubscribe/{unsubscribe}?lang={language}",
    )
    response.background = background
    return response
