"""The public addresses of the web pages, with signed tokens where a link changes a subscription."""

from diffusion.config import Settings
from diffusion.tokens import make_token


def _url(settings: Settings, path: str) -> str:
    return settings.base_url.rstrip("/") + path


def confirm_url(settings: Settings, subscriber_id: int) -> str:
    """Double opt-in: GET shows a button, POST confirms."""
    return _url(
        settings, f"/confirm/{make_token(settings.signing_key(), 'confirm', subscriber_id)}"
    )


def unsubscribe_url(settings: Settings, subscriber_id: int) -> str:
    """GET shows a button, POST unsubscribes; also the RFC 8058 one-click POST target."""
    token = make_token(settings.signing_key(), "unsubscribe", subscriber_id)
    return _url(settings, f"/unsubscribe/{token}")


def preferences_url(settings: Settings, subscriber_id: int) -> str:
    token = make_token(settings.signing_key(), "preferences", subscriber_id)
    return _url(settings, f"/preferences/{token}")


def archive_url(settings: Settings, edition_id: int) -> str:
    """The web version of a sent edition ("view in browser")."""
    return _url(settings, f"/archive/{edition_id}")


def feed_url(settings: Settings, relative_path: str) -> str:
    """A feed file served by `diffusion serve`, e.g. feed_url(s, "sector/ED.en.atom")."""
    return _url(settings, f"/feeds/{relative_path}")
