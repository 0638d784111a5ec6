"""The subscription forms' fields: what they offer, how they are read, their errors."""

from typing import Any

from starlette.datastructures import FormData

from diffusion import i18n, subscriptions
from diffusion.errors import InvalidInput
from diffusion.models import AUDIENCES
from diffusion.vocabulary import audience_label
from diffusion.web.base import Web


def form_choices(form: FormData) -> dict[str, Any]:
    """The preference fields of a form, as text, to validate and to show back."""
    return {
        "language": str(form.get("language") or ""),
        "sectors": [str(value) for value in form.getlist("sectors")],
        "themes": str(form.get("themes") or ""),
        "cadence": str(form.get("cadence") or "monthly"),
    }


def audience_choices(web: Web, language: str) -> list[tuple[str, str]]:
    """The audiences of the forms, each saying whether it needs an editor's approval."""
    choices = []
    for code in AUDIENCES:
        label = audience_label(code, language)
        if code in web.rules.audiences and subscriptions.needs_approval(web.rules, code):
            label = i18n.words(language).pgettext(
                "audience", "%(audience)s (needs an editor's approval)", audience=label
            )
        choices.append((code, label))
    return choices


def form_error(language: str, error: InvalidInput) -> str:
    """What is wrong with the form, in the page's language.

    The validators speak English, naming the value at fault; a page in another language says
    what is wrong with the field in its own words, where the catalogue has them.
    """
    if language != "en" and error.field:
        return _field_error(language, error.field) or str(error)
    return str(error)


def _field_error(language: str, field: str) -> str | None:
    """What is wrong with one form field, said for pages not in English."""
    words = i18n.words(language)
    errors = {
        "email": words.gettext(
            "This email address cannot be used. Check it: an address looks like "
            "name@domain.org, and accented letters are not yet accepted before the @."
        ),
        "language": words.gettext("This language is not offered here."),
        "audience": words.gettext("Choose an audience from the list."),
        "key": words.gettext(
            "We do not know this organisation, Sector, office or country for the chosen "
            "audience. For an NGO, its short name (e.g. ifla); for a Sector, ED, SC, SHS, CLT "
            "or CI; for a country, its code (e.g. CO)."
        ),
        "sectors": words.gettext("Choose the Sectors from the list: ED, SC, SHS, CLT or CI."),
        "themes": words.gettext(
            "Themes are words separated by commas, with no other signs (e.g. inclusion, "
            "lifelong learning)."
        ),
        "cadence": words.gettext("Choose a monthly newsletter or a weekly digest."),
    }
    return errors.get(field)
