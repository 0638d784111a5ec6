"""Sanitising: untrusted HTML becomes allow-listed HTML, titles become one-line plain text."""

import html
import re
import unicodedata
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


def _absolute(base_url: str | None, value: str) -> str | None:
    value = value.strip()
    if not base_url or urlsplit(value).scheme:
        return value
    resolved = urljoin(base_url, value)
    # A base could only be used if it gives an allowed scheme; otherwise drop the attribute.
    return resolved if urlsplit(resolved).scheme in _URL_SCHEMES else None


def clean_html(html_text: str, base_url: str | None = None) -> str:
    """Allow-listed HTML: no scripts, event handlers, javascript: URLs, iframes or styles.

    Relative links and image sources are made absolute against `base_url` (the entry's link),
    because the HTML is read far from where it was published: in an email or a feed reader.
    """

    def resolve(tag: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES:
            return _absolute(base_url, value)
        return value

    return nh3.clean(
        html_text,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=resolve,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
    ).strip()


def clean_text(text: str) -> str:
    """One line of plain text: tags and control characters removed, entities decoded.

    Titles and summaries end up in email headers and plain-text parts, so no newline or control
    character may survive, and markup is dropped rather than escaped.
    """
    if "<" in text or "&" in text:
        text = html.unescape(nh3.clean(text, tags=set(), clean_content_tags=_CLEAN_CONTENT))
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
