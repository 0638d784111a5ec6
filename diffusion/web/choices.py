"""What the subscription forms offer to pick: audience keys by name, and the themes in use.

A reader never types a code: NGOs are listed by name, Sectors by name, Field Offices by city and
countries by their name in the page's language (CLDR, through Babel). Each list is a native
`<select>` (typing a name's first letters finds it, with or without JavaScript); the value sent
is the key, checked again against the directory when the form comes back.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import pycountry
from sqlmodel import Session, col, select
from starlette.datastructures import FormData

from diffusion import i18n
from diffusion.models import SECTORS, Item
from diffusion.select.directory import Directory
from diffusion.select.rules import RoutingRules
from diffusion.vocabulary import audience_label, labelled, sector_name

# The form field that carries the key of each key type, one `<select>` each.
KEY_FIELDS = {
    "organisation": "key_ngo",
    "sector": "key_sector",
    "field_office": "key_field_office",
    "country": "key_country",
}
# Themes are read from the newest items: enough to hold every theme in use at UNESCO's scale.
THEME_ITEMS = 5000


@dataclass(frozen=True)
class KeyList:
    """One `<select>` of keys: the key type, its field, its label and its (key, name) options."""

    key_type: str
    field: str
    label: str
    options: list[tuple[str, str]]


def _sorted(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(pairs, key=lambda pair: (pair[1].casefold(), pair[0]))


def ngo_name(directory: Directory, slug: str) -> str:
    """An NGO as the lists name it: `International Federation of ... (IFLA)`."""
    org = directory.organisations.get(slug)
    if org is None:
        return slug
    if org.acronym and org.acronym.casefold() not in org.name.casefold():
        return f"{org.name} ({org.acronym})"
    return org.name


def key_name(key_type: str, key: str, language: str, directory: Directory) -> str:
    """How a reader names a key: the NGO, the Sector, the office's city, the country."""
    if key_type == "organisation":
        return ngo_name(directory, key)
    if key_type == "sector":
        return sector_name(key, language) if key in SECTORS else key
    if key_type == "field_office":
        office = directory.offices.get(key)
        return office.city if office is not None else key
    if key_type == "country":
        return i18n.country_name(key, language)
    return key


def list_label(key_type: str, language: str) -> str:
    """The label of the list of keys of one key type."""
    words = i18n.words(language)
    labels = {
        "organisation": words.gettext("NGO"),
        "sector": words.pgettext("audience", "Programme Sector"),
        "field_office": words.gettext("Field Office (by city)"),
        "country": words.pgettext("column", "Country"),
    }
    return labels[key_type]


def key_lists(directory: Directory, language: str) -> list[KeyList]:
    """The four lists of keys, each option named in `language`."""
    options = {
        "organisation": ((slug, ngo_name(directory, slug)) for slug in directory.organisations),
        "sector": ((code, sector_name(code, language)) for code in SECTORS),
        "field_office": ((code, office.city) for code, office in directory.offices.items()),
        "country": (
            (country.alpha_2, i18n.country_name(country.alpha_2, language))
            for country in pycountry.countries
        ),
    }
    return [
        KeyList(key_type, field, list_label(key_type, language), _sorted(options[key_type]))
        for key_type, field in KEY_FIELDS.items()
    ]


def key_type_of(rules: RoutingRules, audience: str) -> str:
    """The key type of an audience ("none" for one that follows nothing, or an unknown one)."""
    spec = rules.audiences.get(audience)
    return spec.key_type if spec is not None else "none"


def chosen_key(form: FormData, rules: RoutingRules, audience: str) -> str:
    """The key picked in the list that fits the audience; the `key` field of scripts else."""
    field = KEY_FIELDS.get(key_type_of(rules, audience))
    picked = str(form.get(field) or "").strip() if field else ""
    return picked or str(form.get("key") or "").strip()


def picked(rules: RoutingRules, audience: str, key: str) -> dict[str, str]:
    """The key shown selected again, in the list of its audience's key type only (CI is a
    Sector and a country)."""
    return {key_type_of(rules, audience): key} if key else {}


def subscribed_as(
    rules: RoutingRules, audience: str, key: str, language: str, directory: Directory
) -> str:
    """What a subscription is, said to its holder: `Field Office: Dhaka`."""
    label = audience_label(audience, language)
    if not key:
        return label
    name = key_name(key_type_of(rules, audience), key, language, directory)
    if i18n.direction(language) == "rtl":
        name = i18n.isolate(name)
    return labelled(i18n.words(language), label, name)


def themes_in_use(session: Session, directory: Directory) -> set[str]:
    """The themes the directory (NGOs, forums) and the newest items carry, as slugs."""
    found: set[str] = set()
    for org in directory.organisations.values():
        found.update(org.themes)
    for forum in directory.forums.values():
        found.update(forum.themes)
    tags = session.exec(
        select(Item.tags).order_by(col(Item.published_at).desc()).limit(THEME_ITEMS)
    )
    for item_tags in tags:
        found.update((item_tags or {}).get("themes", ()))
    return {theme.lower() for theme in found if theme}


def theme_options(themes: Iterable[str]) -> list[tuple[str, str]]:
    """(slug, words) of each theme, by its words: `lifelong-learning` reads `lifelong learning`."""
    return _sorted((theme, theme.replace("-", " ")) for theme in set(themes))
