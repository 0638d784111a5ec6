"""The gettext catalogues: every msgid of the source translated in every language, correctly."""

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from diffusion import i18n

ROOT = Path(__file__).resolve().parent.parent
# gettext's plural rules as the translators' tools write them; Babel's CLDR table gives French
# and Spanish a third form (for millions) that no mail needs, so the number is pinned here.
PLURAL_FORMS = {"ar": 6, "zh": 1, "en": 2, "fr": 2, "ru": 3, "es": 2}
# Numbers that take each Arabic and Russian form: all distinct forms must be reachable.
SAMPLES = {"ar": (0, 1, 2, 3, 11, 100), "ru": (1, 2, 5), "fr": (1, 2), "es": (1, 2), "en": (1, 2)}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_BAD_PERCENT = re.compile(r"%(?!\(\w+\)s|%)")

Key = tuple[str | None, str]


def extracted() -> dict[Key, object]:
    """Every msgid in the source, found as `pybabel extract` finds them (locale/babel.cfg)."""
    with (ROOT / "diffusion" / "locale" / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: dict[Key, object] = {}
    for _file, _line, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        singular = message[0] if isinstance(message, tuple) else message
        found[(context, singular)] = message
    return found


def read(language: str) -> Catalog:
    with i18n.catalogue_path(language).open("rb") as handle:
        return read_po(handle, locale=language)


def problems(catalog: Catalog, language: str, source: dict[Key, object]) -> list[str]:
    """What is wrong with one language's catalogue, one line per problem."""
    found: list[str] = []
    if catalog.num_plurals != PLURAL_FORMS[language]:
        found.append(
            f"{language}: {catalog.num_plurals} plural forms, expected {PLURAL_FORMS[language]}"
        )
    rule = gettext.c2py(catalog.plural_expr)
    forms = {rule(n) for n in SAMPLES.get(language, ())}
    if language in SAMPLES and len(forms) != catalog.num_plurals:
        found.append(f"{language}: the Plural-Forms rule reaches forms {sorted(forms)} only")
    entries = {
        (m.context, m.id[0] if isinstance(m.id, tuple) else m.id): m for m in catalog if m.id
    }
    for key, message in source.items():
        entry = entries.get(key)
        where = f"{language}: {key[0] + ' | ' if key[0] else ''}{key[1][:60]!r}"
        if entry is None:
            found.append(f"{where}: missing; run pybabel update")
            continue
        if entry.fuzzy:
            found.append(f"{where}: fuzzy")
        plural = isinstance(message, tuple)
        if plural != isinstance(entry.id, tuple):
            found.append(f"{where}: plural in one, not the other")
            continue
        if language == "en":
            continue  # the source language: an empty msgstr shows the msgid
        expected = set(_PLACEHOLDER.findall(message[-1] if plural else message))  # type: ignore[index,arg-type]
        strings = list(entry.string) if plural else [entry.string]
        if plural and len(strings) != catalog.num_plurals:
            found.append(f"{where}: {len(strings)} plural forms, expected {catalog.num_plurals}")
        for text in strings:
            if not text:
                found.append(f"{where}: not translated")
                continue
            have = set(_PLACEHOLDER.findall(text))
            # A plural form may say its number in words (Arabic "مادتان": two items).
            needed = expected - {"num"} if plural else expected
            if not needed <= have or not have <= expected:
                found.append(f"{where}: placeholders {sorted(have)}, expected {sorted(expected)}")
            if _BAD_PERCENT.search(text):
                found.append(f"{where}: a lone % (write %% for a percent sign)")
    for key in entries.keys() - source.keys():
        found.append(f"{language}: {key[1][:60]!r} is no longer in the source; run pybabel update")
    return found


@pytest.fixture(scope="module")
def source() -> dict[Key, object]:
    return extracted()


def test_the_six_un_languages_have_a_catalogue() -> None:
    assert set(i18n.available_languages()) >= set(i18n.UN_LANGUAGES)


@pytest.mark.parametrize("language", i18n.UN_LANGUAGES)
def test_every_msgid_is_translated_with_its_placeholders_and_plural_forms(
    language: str, source: dict[Key, object]
) -> None:
    assert problems(read(language), language, source) == []


def test_the_template_lists_what_the_source_says(source: dict[Key, object]) -> None:
    pot = read_po((ROOT / "diffusion" / "locale" / "diffusion.pot").open("rb"))
    listed = {(m.context, m.id[0] if isinstance(m.id, tuple) else m.id) for m in pot if m.id}
    assert listed == set(source), "re-extract diffusion.pot (see diffusion/locale/README.md)"


def test_the_checker_finds_a_missing_a_broken_and_a_short_translation(
    source: dict[Key, object],
) -> None:
    """The test above can fail: one translation removed, one placeholder lost, one form short."""
    catalog = read("ar")
    catalog[("Dear reader,")].string = ""
    catalog.get("Dear %(name)s,").string = "عزيزي،"
    plural = catalog.get("%(num)s new item")
    plural.string = plural.string[:3]
    found = problems(catalog, "ar", source)
    assert any("'Dear reader,': not translated" in line for line in found)
    assert any("'Dear %(name)s,': placeholders [], expected ['name']" in line for line in found)
    assert any("new item': 3 plural forms, expected 6" in line for line in found)
    catalog.delete("Unsubscribe:")
    assert any("'Unsubscribe:': missing" in line for line in problems(catalog, "ar", source))


def test_arabic_and_russian_plurals_choose_the_right_form() -> None:
    arabic = i18n.words("ar")
    counted = [arabic.ngettext("%(num)s new item", "%(num)s new items", n) for n in (1, 2, 3, 11)]
    assert counted == ["مادة جديدة واحدة", "مادتان جديدتان", "3 مواد جديدة", "11 مادة جديدة"]
    russian = i18n.words("ru")
    assert [
        russian.ngettext("%(num)s new item", "%(num)s new items", n) for n in (1, 3, 5, 21)
    ] == [
        "1 новый материал",
        "3 новых материала",
        "5 новых материалов",
        "21 новый материал",
    ]
    assert get_plural("ar").num_plurals == 6  # Babel agrees with the catalogue's header
