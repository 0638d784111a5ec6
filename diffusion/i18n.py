"""Interface languages: gettext catalogues, text direction, and dates and numbers per locale."""

import io
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from diffusion.errors import InvalidInput

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "diffusion"
# The six UN languages: each gets a correct lang/dir and Babel's dates and numbers; those
# without a catalogue yet show the English interface strings.
UN_LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur"})


def direction(language: str) -> str:
    """`rtl` or `ltr`, for the `dir` attribute."""
    return "rtl" if language.split("-")[0].lower() in RTL_LANGUAGES else "ltr"


def locale_for(language: str) -> Locale:
    """Babel's locale for a language code; raises InvalidInput for an unknown code."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError) as exc:
        raise InvalidInput(f"language {language!r}: not a known locale code (e.g. en, fr)") from exc


@lru_cache(maxsize=16)
def translations(language: str) -> NullTranslations:
    """The interface strings of a language, read from its .po file.

    The catalogue is compiled in memory from `locale/LANG/LC_MESSAGES/diffusion.po` at first
    use, so that a fresh checkout or install needs no `pybabel compile` step.
    """
    po_path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_path.is_file():
        return NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def available_languages() -> tuple[str, ...]:
    """Languages that have a catalogue under locale/."""
    return tuple(
        sorted(path.parent.parent.name for path in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    )


def gettext(language: str, message: str) -> str:
    return translations(language).ugettext(message)


def format_day(moment: date | datetime, language: str) -> str:
    """A date as the reader writes it: `3 Nov 2026`, `3 nov. 2026`."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return format_skeleton("yMMMd", day, locale=locale_for(language))


def format_month(moment: date | datetime, language: str) -> str:
    """A month and year: `November 2026`, `novembre 2026`."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return format_skeleton("yMMMM", day, locale=locale_for(language))


def format_number(number: int | float, language: str) -> str:
    """A number with the locale's separators: `1,234` / `1 234`."""
    return format_decimal(number, locale=locale_for(language))
