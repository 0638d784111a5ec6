"""Per-recipient placeholders: rendered once per segment, filled in per recipient."""

import re
from collections.abc import Mapping

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
