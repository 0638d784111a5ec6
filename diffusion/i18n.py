"""Interface languages: one gettext catalogue per language, text direction, Babel's formats."""

import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from diffusion.errors import InvalidInput

if TYPE_CHECKING:
    from diffusion.config import Settings

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "diffusion"
# The six official languages of the United Nations, in the order UNESCO lists them.
UN_LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur"})
# The default name of the newsletter: a msgid, so each language gets its own name.
DEFAULT_NEWSLETTER_NAME = "NGO-UNESCO Partnership Diffusion"
# Unicode directional isolates (UAX #9): an embedded run keeps its own direction and does
# not reorder the text around it, in a text part where there is no markup to say so.
FSI, PDI = "\u2068", "\u2069"


def base_language(language: str) -> str:
    return language.replace("_", "-").split("-")[0].lower()


def direction(language: str) -> str:
    """`rtl` or `ltr`, for the `dir` attribute."""
    return "rtl" if base_language(language) in RTL_LANGUAGES else "ltr"


def locale_for(language: str) -> Locale:
    """Babel's locale for a language code; raises InvalidInput for an unknown code."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError) as exc:
        raise InvalidInput(f"language {language!r}: not a known locale code (e.g. en, fr)") from exc


def N_(message: str) -> str:
    """Marks a msgid for `pybabel extract` where it is translated later (a page's title)."""
    return message


class Words:
    """One language's catalogue; fields are filled as Jinja's newstyle gettext fills them.

    `gettext`, `ngettext` and `pgettext` keep their standard names so that `pybabel extract`
    finds every call with its default keywords. `ngettext` fills `%(num)s` with the number
    written the language's way.
    """

    def __init__(self, language: str, translations: NullTranslations) -> None:
        self.language = language
        self.translations = translations

    def gettext(self, message: str, **fields: object) -> str:
        text = self.translations.gettext(message)
        return text % fields if fields else text

    def ngettext(self, singular: str, plural: str, count: int, **fields: object) -> str:
        text = self.translations.ngettext(singular, plural, count)
        return text % {"num": format_number(count, self.language), **fields}

    def pgettext(self, context: str, message: str, **fields: object) -> str:
        text = str(self.translations.pgettext(context, message))
        return text % fields if fields else text

    def npgettext(
        self, context: str, singular: str, plural: str, count: int, **fields: object
    ) -> str:
        text = self.translations.npgettext(context, singular, plural, count)
        return text % {"num": format_number(count, self.language), **fields}


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=16)
def translations(language: str) -> NullTranslations:
    """The interface strings of a language, read from its .po file.

    The catalogue is compiled in memory from `locale/LANG/LC_MESSAGES/diffusion.po` at first
    use, so that a fresh checkout or install needs no `pybabel compile` step. A regional
    variant (`fr-CA`) without a catalogue of its own uses its language's.
    """
    for code in (language.replace("-", "_"), base_language(language)):
        po_path = catalogue_path(code)
        if po_path.is_file():
            break
    else:
        return NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=code, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


@lru_cache(maxsize=16)
def words(language: str) -> Words:
    """The catalogue of `language` (English, the source language, where it has none)."""
    return Words(language, translations(language))


def available_languages() -> tuple[str, ...]:
    """Languages that have a catalogue under locale/."""
    return tuple(
        sorted(path.parent.parent.name for path in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    )


def has_catalogue(language: str) -> bool:
    """Whether `language` (or its base language) has a catalogue under locale/."""
    code = language.replace("-", "_")
    return catalogue_path(code).is_file() or catalogue_path(base_language(code)).is_file()


def offered_language(language: str, configured: Sequence[str]) -> str:
    """`language` if it is one of the configured languages; else InvalidInput naming them."""
    code = language.strip().replace("_", "-")
    if code in configured:
        return code
    lowered = {option.lower(): option for option in configured}
    if code.lower() in lowered:
        return lowered[code.lower()]
    if base_language(code) in configured:  # fr-CA: the French catalogue
        return base_language(code)
    raise InvalidInput(
        f"language {language!r}: not offered; the configured languages are "
        f"{', '.join(configured)} (setting `languages`)",
        field="language",
    )


def own_name(language: str) -> str:
    """A language in its own name, for a language picker: العربية, 中文, English, Français."""
    try:
        name = Locale.parse(language.replace("-", "_")).get_display_name() or language
    except (UnknownLocaleError, ValueError):
        return language
    return name[:1].upper() + name[1:]


def language_name(code: str, reader_language: str) -> str:
    """A language as the reader names it: `anglais` for a French reader."""
    try:
        return (
            Locale.parse(code.replace("-", "_")).get_display_name(locale_for(reader_language))
            or code
        )
    except (UnknownLocaleError, ValueError, InvalidInput):
        return code


def country_name(code: str, language: str) -> str:
    """An ISO 3166-1 country as the reader names it: Bangladesh, バングラデシュ, Бангладеш."""
    try:
        return str(locale_for(language).territories.get(code.upper(), code))
    except InvalidInput:
        return code


def format_day(moment: date | datetime, language: str) -> str:
    """A date as the reader writes it: `3 Nov 2026`, `3 nov. 2026`."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return format_skeleton("yMMMd", day, locale=locale_for(language))


def format_month(moment: date | datetime, language: str) -> str:
    """A month and year: `November 2026`, `novembre 2026`."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return format_skeleton("yMMMM", day, locale=locale_for(language))


def format_number(number: int | float, language: str) -> str:
    """A number with the locale's separators and digits: `1,234` / `1 234` / `١٬٢٣٤`."""
    return format_decimal(number, locale=locale_for(language))


def format_items(values: Iterable[str], language: str) -> str:
    """A list as the language writes one: `ED, SC and CI` / `ED، وSC وCI` / `ED、SC和CI`."""
    listed = [value for value in values if value]
    if not listed:
        return ""
    return format_list(listed, style="standard", locale=locale_for(language))


def isolate(text: str) -> str:
    """Text of unknown direction (a name, an address, a code) isolated for a text part."""
    return f"{FSI}{text}{PDI}" if text else text


def newsletter_name(settings: "Settings", language: str) -> str:
    """The newsletter's name in `language`: `newsletter_names`, else the catalogue's."""
    names = settings.newsletter_names
    for code in (language, base_language(language)):
        if names.get(code):
            return names[code]
    if settings.organisation_name != DEFAULT_NEWSLETTER_NAME:
        return settings.organisation_name  # one name chosen for every language
    return words(language).pgettext("newsletter name", "NGO-UNESCO Partnership Diffusion")


def sender_name(settings: "Settings", language: str) -> str:
    """The display name of From in `language`: `sender_names`, else the newsletter's name."""
    names = settings.sender_names
    for code in (language, base_language(language)):
        if names.get(code):
            return names[code]
    return newsletter_name(settings, language)
