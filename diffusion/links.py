"""The public addresses of the web pages, with signed tokens where a link changes a subscription."""

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from itsdangerous import Signer

from diffusion.config import Settings
from diffusion.tokens import make_token, oldest_first

# The salt of archive signatures: a subscription token can never pass for one, nor the reverse.
ARCHIVE_SALT = "diffusion.archive"


def _url(settings: Settings, path: str) -> str:
    return settings.base_url.rstrip("/") + path


def confirm_url(
    settings: Settings, person_id: int, *, request: dict[str, Any], issued_at: datetime
) -> str:
    """Double opt-in: GET shows a button, POST confirms.

    The token carries the request itself (audience, key, narrowing, language, name) and when
    it was made: confirming it is the only thing that applies the request, and a link made
    before the person unsubscribed, bounced or complained cannot bring them back.
    """
    token = make_token(
        settings.signing_keys(), "confirm", person_id, req=request, at=issued_at.isoformat()
    )
    return _url(settings, f"/confirm/{token}")


def unsubscribe_url(settings: Settings, subscriber_id: int, cadence: str | None = None) -> str:
    """GET shows a button, POST unsubscribes; also the RFC 8058 one-click POST target.

    With a cadence, the person leaves only their subscriptions of that cadence: those the email
    carrying the link covered (the parameter can only narrow what the signed token allows).
    """
    token = make_token(settings.signing_keys(), "unsubscribe", subscriber_id)
    query = f"?cadence={cadence}" if cadence else ""
    return _url(settings, f"/unsubscribe/{token}{query}")


def preferences_url(settings: Settings, subscriber_id: int) -> str:
    token = make_token(settings.signing_keys(), "preferences", subscriber_id)
    return _url(settings, f"/preferences/{token}")


def _archive_signer(settings: Settings) -> Signer:
    # Signs with the current key, verifies with every key still accepted.
    return Signer(oldest_first(settings.signing_keys()), salt=ARCHIVE_SALT)


def archive_signature(settings: Settings, edition_id: int) -> str:
    """The signature that opens a non-public edition's web version; it does not expire."""
    return _archive_signer(settings).get_signature(str(edition_id)).decode("ascii")


def archive_signature_ok(settings: Settings, edition_id: int, signature: str | None) -> bool:
    """Whether `signature` is the one `archive_url` put in the edition's link."""
    if not signature:
        return False
    return _archive_signer(settings).verify_signature(str(edition_id), signature)


def archive_url(settings: Settings, edition_id: int) -> str:
    """The web version of a sent edition ("view in browser"), signed: editions of non-public
    audiences are shown only to whoever has this link."""
    return _url(settings, f"/archive/{edition_id}?sig={archive_signature(settings, edition_id)}")


def feed_url(settings: Settings, relative_path: str) -> str:
    """A feed file served by `diffusion serve`, e.g. feed_url(s, "sector/ED.en.atom")."""
    return _url(settings, f"/feeds/{relative_path}")


# Editorial entries' guids (`urn:diffusion:entry:<file stem>`) give their pages readable names.
EDITORIAL_GUID_PREFIX = "urn:diffusion:entry:"
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,119}")


def item_slug(guid: str, item_id: int) -> str:
    """The name of an item's page: its editorial slug where it has one, else its id."""
    slug = guid.removeprefix(EDITORIAL_GUID_PREFIX)
    if _SLUG.fullmatch(slug) and not slug.isdigit():
        return slug
    return str(item_id)


def item_guids(slug: str) -> tuple[str, ...]:
    """The guids a page name other than an id can stand for."""
    return (slug, EDITORIAL_GUID_PREFIX + slug) if _SLUG.fullmatch(slug) else ()


def item_url(settings: Settings, guid: str, item_id: int) -> str:
    """The web page of a public item: `/items/ifla-reading-bd` or `/items/42`."""
    return _url(settings, f"/items/{quote(item_slug(guid, item_id), safe='')}")


def news_url(settings: Settings, family: str, key: str, language: str) -> str:
    """The HTML page of a feed: `/news/sector/ED?lang=fr`."""
    path = f"/news/{quote(family, safe='')}" + (f"/{quote(key, safe='')}" if key else "")
    return _url(settings, f"{path}?lang={quote(language, safe='')}")


def directory_url(settings: Settings, language: str, country: str = "") -> str:
    """The directory page, searchable by Sector, country and field: `/directory/?country=BD`."""
    query = f"lang={quote(language, safe='')}" + (f"&country={quote(country)}" if country else "")
    return _url(settings, f"/directory/?{query}")
