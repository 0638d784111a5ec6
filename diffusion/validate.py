"""Validators for values given by people: each returns the normal form or raises InvalidInput."""

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pycountry
from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from diffusion.errors import InvalidInput
from diffusion.models import AUDIENCES, CADENCES, CONTENT_KINDS, SECTORS

# The six official languages of the United Nations are always accepted, whatever pycountry says.
UN_LANGUAGES = ("en", "fr", "es", "ar", "ru", "zh")
# UNESCO's five electoral-group regions, as used in the routing rules and preferences.
REGIONS = (
    "africa",
    "arab-states",
    "asia-pacific",
    "europe-north-america",
    "latin-america-caribbean",
)
# Official partnership statuses under the 2011 Directives.
PARTNERSHIP_STATUSES = ("consultative", "associate")

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_LIST_SEPARATORS = re.compile(r"[;,]")
# Characters that could end a header line or smuggle a second header into a message.
_HEADER_BREAKING = re.compile(r"[\x00-\x1f\x7f]")
# Control characters (C0, DEL, C1) and the invisible marks that reorder or hide text (bidi
# overrides and isolates, zero-width characters): nothing a name needs, all a spoofer wants.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
NAME_MAX = 200


def without_controls(value: str) -> str:
    """`value` with control and invisible characters removed and whitespace runs as one space."""
    return " ".join(_CONTROLS.sub(" ", value).split())


def person_name(value: object) -> str:
    """A person's name as shown and put in `To:`: printable, one line, at most 200 characters.

    Control characters are dropped rather than refused: an escape or a NUL pasted with a
    name is noise, and the rest of the name is what the person gave.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"name: expected text, got {value!r}", field="name")
    return without_controls(value)[:NAME_MAX].strip()


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: expected text, got {value!r}")
    text = value.strip()
    if not text:
        raise InvalidInput(f"{what}: missing")
    return text


@contextmanager
def in_field(name: str) -> Iterator[None]:
    """An InvalidInput raised inside names the form field `name` (see InvalidInput.field)."""
    try:
        yield
    except InvalidInput as exc:
        exc.field = exc.field or name
        raise


def _invalid(
    field: str | None, label: str, shown: str, alone: str, in_field: str | None = None
) -> InvalidInput:
    """The same reason in the two places values come from.

    A value on its own (a directory row's `country`) reads `country 'XX': not an ISO...`; a
    value inside a named field or tag of a file (`countries: [XX]`) reads
    `countries: 'XX' is not an ISO...`, so that the file's own key leads the message.
    """
    if field is None:
        return InvalidInput(f"{label} {shown!r}: {alone}")
    return InvalidInput(f"{field}: {shown!r} is {in_field or alone}")


def _one_of(
    text: str, label: str, known: Iterable[str], field: str | None, in_field: str | None = None
) -> str:
    """`text` if it is one of `known`, else the reason naming what is known."""
    known = tuple(known)
    if text not in known:
        raise _invalid(field, label, text, f"unknown; expected one of {', '.join(known)}", in_field)
    return text


def _checked(value: object) -> ValidatedEmail:
    if isinstance(value, str) and _HEADER_BREAKING.search(value):
        raise InvalidInput(f"address {value!r}: contains a line break or control character")
    text = _text(value, "address")
    try:
        return validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"address {text!r}: {exc}") from exc


def email(value: object) -> str:
    """A deliverable-looking address, normalised (domain lower-cased); no DNS lookup.

    This keeps the local part as written, for contacts; subscribers use subscriber_email.
    """
    local, _, domain = _checked(value).normalized.rpartition("@")
    return f"{local}@{domain.lower()}"


def subscriber_email(value: object) -> str:
    """A subscriber's address as stored, mailed and looked up: wholly lower-cased, with an
    internationalised domain in its ASCII (IDNA) form, which every mail server accepts.

    Mail servers could treat `Helen@` and `helen@` as two mailboxes, but nobody runs them so:
    a person subscribing twice with different capitals is one subscriber (as in listmonk).
    Every lookup by address goes through here, so that stored and asked-for forms agree.
    A local part (before the @) that is not ASCII needs SMTPUTF8, which Diffusion does not
    speak: such an address is refused here, where the person can be told, not at every send.
    """
    checked = _checked(value)
    if checked.ascii_email is None:
        raise InvalidInput(
            f"address {checked.normalized!r}: letters outside ASCII before the @ are not "
            "supported yet; please use another address"
        )
    return checked.ascii_email.lower()


def country(value: object, *, field: str | None = None) -> str:
    """An ISO 3166-1 alpha-2 country code, upper-case; `field` names where it was given."""
    code = _text(value, field or "country").upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        reason = "not an ISO 3166-1 alpha-2 code (e.g. BD, FR, CO)"
        raise _invalid(field, "country", code, reason)
    return code


def sector(value: object, *, field: str | None = None) -> str:
    """A programme Sector code: ED, SC, SHS, CLT or CI; `field` names where it was given."""
    code = _text(value, field or "Sector").upper()
    expected = f"not a Sector code; expected one of {', '.join(SECTORS)}"
    return _one_of(code, "Sector", SECTORS, field, expected)


def kind(value: object, *, field: str | None = None) -> str:
    """A content kind of models.CONTENT_KINDS; `field` names where it was given."""
    text = _text(value, field or "kind").lower()
    return _one_of(text, "kind", CONTENT_KINDS, field, f"not one of {', '.join(CONTENT_KINDS)}")


def audience(value: object) -> str:
    """An audience of models.AUDIENCES."""
    return _one_of(_text(value, "audience").lower(), "audience", AUDIENCES, None)


def language(value: object, *, field: str | None = None) -> str:
    """A two-letter ISO 639-1 language code, lower-case (en, fr, es, ar, ru, zh...)."""
    code = _text(value, field or "language").lower()
    if code in UN_LANGUAGES:
        return code
    if len(code) != 2 or pycountry.languages.get(alpha_2=code) is None:
        alone = "not a two-letter ISO 639-1 code (e.g. en, fr)"
        raise _invalid(field, "language", code, alone, "not an ISO 639 code such as en or fr")
    return code


def cadence(value: object) -> str:
    """How often a subscriber receives digests: monthly or weekly."""
    return _one_of(_text(value, "cadence").lower(), "cadence", CADENCES, None)


def region(value: object) -> str:
    """One of UNESCO's five regions, as a slug (africa, arab-states, asia-pacific...)."""
    text = _text(value, "region").lower().replace(" ", "-").replace("_", "-")
    return _one_of(text, "region", REGIONS, None)


def slug(value: object) -> str:
    """A lower-case identifier of letters, digits and single hyphens, at most 80 characters."""
    text = _text(value, "slug")
    if len(text) > 80 or not _SLUG.fullmatch(text):
        raise InvalidInput(
            f"slug {text!r}: use lower-case letters, digits and hyphens (e.g. ifla, icsc-2020)"
        )
    return text


def theme(value: object) -> str:
    """A theme, normalised to a slug: `Lifelong learning` becomes `lifelong-learning`."""
    text = re.sub(r"[\s_]+", "-", _text(value, "theme").lower())
    if len(text) > 80 or not _SLUG.fullmatch(text):
        raise InvalidInput(f"theme {value!r}: use words, digits and hyphens (e.g. inclusion)")
    return text


def sdg(value: object, *, field: str | None = None) -> str:
    """A Sustainable Development Goal number, 1 to 17, as text (`SDG 4` and `04` give `4`)."""
    given = _text(str(value) if isinstance(value, int) else value, field or "SDG")
    text = given.upper().removeprefix("SDG").strip()
    if not text.isdigit() or not 1 <= int(text) <= 17:
        alone = "expected a goal number from 1 to 17"
        raise _invalid(field, "SDG", given, alone, "not a goal number from 1 to 17")
    return str(int(text))


def website(value: object) -> str:
    """An http(s) address."""
    text = _text(value, "website")
    if not re.fullmatch(r"https?://[^\s/]+\.[^\s]*", text):
        raise InvalidInput(f"website {text!r}: expected an http:// or https:// address")
    return text


def split_list(value: object) -> list[str]:
    """A list cell: `ED;SC`, `ED, SC`, a YAML list, or empty; items stripped, blanks dropped."""
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        parts: Iterable[object] = value
    elif isinstance(value, str):
        parts = _LIST_SEPARATORS.split(value)
    else:
        parts = [value]
    return [str(part).strip() for part in parts if str(part).strip()]


def unique(values: Iterable[str]) -> list[str]:
    """The values in first-seen order, without repeats."""
    return list(dict.fromkeys(values))
