"""Sanitising: untrusted HTML becomes allow-listed HTML, titles become one-line plain text."""

import html
import re
import unicodedata
from contextvars import ContextVar
from urllib.parse import urljoin, urlsplit

import nh3

# No style attribute anywhere: inline styles can hide text (display:none, tiny fonts) in emails.
_TAGS = set(nh3.ALLOWED_TAGS) - {"area", "map", "center", "nav", "header", "footer"}
_ATTRIBUTES: dict[str, set[str]] = {
    tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items() if tag in _TAGS
}
_ATTRIBUTES["*"] = {"lang", "dir", "title"}
_URL_SCHEMES = {"http", "https", "mailto"}
_URL_ATTRIBUTES = {"href", "src", "cite"}
_CLEAN_CONTENT = {"script", "style"}
_SPACES = re.compile(r"\s+")
# Block boundaries become spaces in plain text, so that paragraphs do not run together.
_BLOCK = re.compile(
    r"</?(?:p|div|br|li|h[1-6]|tr|td|th|dd|dt|blockquote|pre|hr|table|ul|ol|section|article)\b",
    re.IGNORECASE,
)


# The cleaners are built once (building one costs ten times a small clean); the base URL of the
# call in progress reaches the attribute filter through a context variable.
_base_url: ContextVar[str | None] = ContextVar("base_url", default=None)


def _resolve(tag: str, attribute: str, value: str) -> str | None:
    if attribute not in _URL_ATTRIBUTES:
        return value
    value = value.strip()
    base_url = _base_url.get()
    if not base_url or urlsplit(value).scheme:
        return value
    resolved = urljoin(base_url, value)
    # A base could only be used if it gives an allowed scheme; otherwise drop the attribute.
    return resolved if urlsplit(resolved).scheme in _URL_SCHEMES else None


_HTML_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_CLEAN_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_resolve,
    url_schemes=_URL_SCHEMES,
    link_rel="noopener noreferrer",
)
_TEXT_CLEANER = nh3.Cleaner(tags=set(), clean_content_tags=_CLEAN_CONTENT)


def clean_html(html_text: str, base_url: str | None = None) -> str:
    """Allow-listed HTML: no scripts, event handlers, javascript: URLs, iframes or styles.

    Relative links and image sources are made absolute against `base_url` (the entry's link),
    because the HTML is read far from where it was published: in an email or a feed reader.
    """
    token = _base_url.set(base_url)
    try:
        return _HTML_CLEANER.clean(html_text).strip()
    finally:
        _base_url.reset(token)


def clean_text(text: str, *, markup: bool = True) -> str:
    """One line of plain text: tags and control characters removed, entities decoded.

    Titles and summaries end up in email headers and plain-text parts, so no newline or control
    character may survive, and markup is dropped rather than escaped. With `markup=False` the
    text is taken as plain text already (an Atom `type="text"` title): only spaces and control
    characters are tidied.
    """
    if markup and ("<" in text or "&" in text):
        text = html.unescape(_TEXT_CLEANER.clean(text))
    if text.isprintable():  # the common case, far quicker than looking at each character
        return _SPACES.sub(" ", text).strip()
    stripped = text
    kept = "".join(
        " " if char.isspace() else char
        for char in stripped
        if char.isspace() or unicodedata.category(char) not in ("Cc", "Cs", "Co")
    )
    return _SPACES.sub(" ", kept).strip()


def excerpt(html_text: str, limit: int = 300) -> str:
    """A plain-text summary of some HTML, cut at a word boundary under `limit` characters."""
    text = clean_text(_BLOCK.sub(r" \g<0>", html_text))
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.")
    return cut + "…"
