"""The subscription forms' fields: what they offer, how they are read, their errors."""

from collections.abc import Iterable
from typing import Any

from sqlmodel import Session
from starlette.datastructures import FormData

from diffusion import i18n, subscriptions
from diffusion.errors import InvalidInput
from diffusion.models import AUDIENCES
from diffusion.select.directory import read_directory
from diffusion.validate import split_list
from diffusion.vocabulary import audience_label
from diffusion.web.base import Web
from diffusion.web.choices import (
    KEY_FIELDS,
    key_lists,
    key_type_of,
    list_label,
    theme_options,
    themes_in_use,
)


def form_choices(form: FormData) -> dict[str, Any]:
    """The preference fields of a form, as text, to validate and to show back."""
    return {
        "language": str(form.get("language") or ""),
        "sectors": [str(value) for value in form.getlist("sectors")],
        # Checkboxes send one theme each; a script may still send them separated by commas.
        "themes": [theme for value in form.getlist("themes") for theme in split_list(str(value))],
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


def form_lists(web: Web, language: str) -> dict[str, Any]:
    """What the forms offer to pick, read from the directory and the items: for the page."""
    with Session(web.engine) as session:
        directory = read_directory(session)
        themes = themes_in_use(session, directory)
    return {"key_lists": key_lists(directory, language), "theme_choices": theme_options(themes)}


def known_themes(themes: Iterable[str], known: set[str]) -> None:
    """InvalidInput unless every theme is one in use: a theme nothing carries would silently
    narrow the reader's digest to nothing."""
    unknown = [theme for theme in themes if theme not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none yet"
        raise InvalidInput(
            f"themes {', '.join(unknown)}: no item or NGO carries them; choose from: {listed}",
            field="themes",
        )


def form_error(web: Web, language: str, error: InvalidInput, audience: str = "") -> str:
    """What is wrong with the form, in the page's language.

    The validators speak English, naming the value at fault; a page in another language says
    what is wrong with the field in its own words, where the catalogue has them. A key or a
    theme is always said in the page's words, pointing to the list to choose from: the
    validators' lists of slugs and codes are what the reader should never need.
    """
    if error.field == "key":
        key_type = key_type_of(web.rules, audience)
        if key_type in KEY_FIELDS:
            return i18n.words(language).gettext(
                "For this audience, choose one from the list “%(list)s”.",
                list=list_label(key_type, language),
            )
    if error.field == "themes":
        return i18n.words(language).gettext(
            "Choose the themes from the list: no item or NGO carries the ones given."
        )
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
            "This audience follows no organisation, Sector, office or country: leave the lists "
            "empty."
        ),
        "sectors": words.gettext("Choose the Sectors from the list: ED, SC, SHS, CLT or CI."),
        "cadence": words.gettext("Choose a monthly newsletter or a weekly digest."),
    }
    return errors.get(field)
