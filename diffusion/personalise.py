"""Per-recipient placeholders: rendered once per segment, filled in per recipient."""

import html
import re
from collections.abc import Mapping

from diffusion import i18n
from diffusion.contracts import RenderedEdition

# Plain ASCII with no characters that quoted-printable, HTML escaping or line folding change,
# so a placeholder survives rendering and can be replaced in the final bytes.
FIELDS = ("greeting", "name", "email", "unsubscribe_url", "preferences_url")
_PATTERN = re.compile(r"\[\[diffusion:([a-z_]+)\]\]")


def placeholder(field: str) -> str:
    """The marker a template writes where a recipient's value goes."""
    if field not in FIELDS:
        raise ValueError(f"unknown personalisation field {field!r}; expected one of {FIELDS}")
    return f"[[diffusion:{field}]]"


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder with the recipient's value (already escaped for the context)."""
    return _PATTERN.sub(lambda match: values[match.group(1)], template)


def greeting(language: str, name: str) -> str:
    """The salutation at the top of an email: "Dear Ana," / "Bonjour Ana,"; a name of the
    other direction is isolated, so "Ana Sample" does not pull the Arabic comma to its side."""
    words = i18n.words(language)
    name = " ".join(name.split())
    if name:
        shown = i18n.isolate(name) if i18n.direction(language) == "rtl" else name
        return words.gettext("Dear %(name)s,", name=shown)
    return words.gettext("Dear reader,")


def personalise(rendered: RenderedEdition, values: Mapping[str, str]) -> tuple[str, str]:
    """The HTML and text of one recipient's copy: placeholders filled, escaped for HTML."""
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    return fill(rendered.html, escaped), fill(rendered.text, values)
