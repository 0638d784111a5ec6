"""What every page handler shares: the Web state, the page's language, the page answers."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from diffusion import i18n
from diffusion.config import Settings
from diffusion.errors import InvalidToken
from diffusion.i18n import N_, direction
from diffusion.models import SECTORS, Person
from diffusion.select.rules import RoutingRules
from diffusion.tokens import read_token
from diffusion.vocabulary import sector_name
from diffusion.web.protection import (
    CSRF_FIELD,
    RateLimiter,
    csrf_cookie_name,
    csrf_ok,
    csrf_token,
    new_csrf_cookie,
    usable_cookie,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
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


def web_of(request: Request) -> Web:
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


def render_page(
    request: Request,
    template: str,
    language: str,
    title: str,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    """A page in `language`; `title` is a msgid (marked with N_), translated here."""
    web = web_of(request)
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


def message_page(
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
    return render_page(
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


def invalid_link(request: Request, language: str) -> Response:
    return message_page(
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


def csrf_refused(request: Request, language: str) -> Response:
    return message_page(
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


def csrf_valid(request: Request, form: FormData) -> bool:
    web = web_of(request)
    return csrf_ok(web.secret, request.cookies.get(web.csrf_cookie), form.get(CSRF_FIELD))


def rate_limited(request: Request, language: str) -> Response:
    response = message_page(
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


def person_of(web: Web, purpose: str, token: str) -> tuple[Person | None, dict[str, Any]]:
    """The person a token names, and its claims; InvalidToken if tampered with or expired.

    People's ids are never reused, so a link made for someone removed names nobody.
    """
    max_age = web.settings.subscribe.confirm_token_days * 86400 if purpose == "confirm" else None
    claims = read_token(web.secret, purpose, token, max_age)
    with Session(web.engine, expire_on_commit=False) as session:
        person = session.get(Person, claims["sub"])
    return person, claims


def person_id(person: Person) -> int:
    if person.id is None:
        raise InvalidToken("this link names no stored subscription")
    return person.id
