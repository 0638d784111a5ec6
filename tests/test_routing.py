"""Routing rules: the bundled rules send each item to the audiences it must reach, and no other."""

import shutil
from pathlib import Path

import pytest
from digest_dataset import directory, items

from diffusion.config import bundled_path, load_settings
from diffusion.errors import InvalidInput, UnknownAudience
from diffusion.models import AUDIENCES
from diffusion.select.directory import check_key
from diffusion.select.matchers import routes_to
from diffusion.select.rules import RoutingError, feed_path, load_rules

BUNDLED = bundled_path("routing")

# (item guid, audience, key, reaches?)
EXPECTED = [
    # an NGO's own public action
    ("ifla-reading-bd", "ngo", "ifla", True),
    ("ifla-reading-bd", "ngo", "icsc", False),
    ("ifla-reading-bd", "sector", "CI", True),
    ("ifla-reading-bd", "sector", "ED", False),
    ("ifla-reading-bd", "field_office", "dhaka", True),
    ("ifla-reading-bd", "field_office", "nairobi", False),
    ("ifla-reading-bd", "member_state", "BD", True),
    ("ifla-reading-bd", "member_state", "KE", False),
    ("ifla-reading-bd", "national_commission", "BD", True),
    ("ifla-reading-bd", "liaison_committee", "", True),
    ("ifla-reading-bd", "public", "", True),
    # a non-public action: Secretariat-side audiences and the NGO itself only
    ("icsc-private-ke", "ngo", "icsc", True),
    ("icsc-private-ke", "ngo", "ifla", False),
    ("icsc-private-ke", "sector", "SHS", True),
    ("icsc-private-ke", "field_office", "nairobi", True),
    ("icsc-private-ke", "member_state", "KE", True),
    ("icsc-private-ke", "national_commission", "KE", False),
    ("icsc-private-ke", "liaison_committee", "", True),
    ("icsc-private-ke", "public", "", False),
    # planned work goes to Sectors, offices and Member States, not National Commissions
    ("ocean-plan-fj", "sector", "SC", True),
    ("ocean-plan-fj", "field_office", "apia", True),
    ("ocean-plan-fj", "member_state", "FJ", True),
    ("ocean-plan-fj", "national_commission", "FJ", False),
    ("ocean-plan-fj", "ngo", "ocean", True),
    # Field Office activities: NGOs in the office's countries or fields, National Commissions
    ("dhaka-office-literacy", "ngo", "ifla", True),  # IFLA works in Bangladesh
    ("dhaka-office-literacy", "ngo", "icsc", False),
    ("dhaka-office-literacy", "national_commission", "BD", True),
    ("dhaka-office-literacy", "national_commission", "KE", False),
    ("dhaka-office-literacy", "field_office", "dhaka", False),
    ("dhaka-office-literacy", "member_state", "BD", False),
    ("dhaka-office-literacy", "sector", "ED", False),
    ("apia-office-literacy", "ngo", "ifla", True),  # by its field: literacy
    ("apia-office-literacy", "ngo", "ocean", True),  # by its country: Fiji
    ("apia-office-literacy", "ngo", "icsc", False),
    ("apia-office-literacy", "national_commission", "FJ", True),
    ("apia-office-literacy", "national_commission", "BD", False),
    # programme implementation: NGOs of the Sector, and the Sector
    ("ed-programme-nairobi", "ngo", "ifla", True),
    ("ed-programme-nairobi", "ngo", "icsc", False),
    ("ed-programme-nairobi", "sector", "ED", True),
    ("ed-programme-nairobi", "sector", "SC", False),
    ("ed-programme-nairobi", "field_office", "nairobi", False),
    # forum conclusions: by the forum's Sectors, themes and countries
    ("icngo-conclusions", "sector", "ED", True),
    ("icngo-conclusions", "sector", "SHS", True),
    ("icngo-conclusions", "sector", "SC", False),
    ("icngo-conclusions", "member_state", "FR", True),
    ("icngo-conclusions", "member_state", "BD", False),
    ("icngo-conclusions", "ngo", "icsc", True),
    ("icngo-conclusions", "national_commission", "FR", False),
    ("medellin-private", "sector", "ED", True),  # the forum's theme
    ("medellin-private", "member_state", "CO", True),
    ("medellin-private", "ngo", "ifla", False),  # not public
    ("medellin-private", "public", "", False),
    ("medellin-private", "liaison_committee", "", True),
    ("world-book-day", "ngo", "ocean", True),
    ("world-book-day", "sector", "ED", False),
    ("world-book-day", "member_state", "BD", False),
    ("world-book-day", "public", "", True),
]


@pytest.mark.parametrize(("guid", "audience", "key", "reaches"), EXPECTED)
def test_bundled_rules_route_each_item_to_its_audiences(
    guid: str, audience: str, key: str, reaches: bool
) -> None:
    rules = load_rules(BUNDLED)
    item = next(item for item in items() if item.guid == guid)
    assert routes_to(item, rules.audience(audience), key, directory()) is reaches


def test_feeds_never_carry_private_items() -> None:
    rules = load_rules(BUNDLED)
    private = next(item for item in items() if item.guid == "icsc-private-ke")
    spec = rules.audience("sector")
    assert routes_to(private, spec, "SHS", directory())
    assert not routes_to(private, spec, "SHS", directory(), public_only=True)


def test_bundled_rules_cover_every_audience_and_feed_family() -> None:
    rules = load_rules(BUNDLED)
    assert set(rules.audiences) == set(AUDIENCES)
    assert rules.audience("liaison_committee").references == ("ngo_directory",)
    assert rules.audience("sector").references == ("expert_ngos",)
    assert rules.audience("ngo").references == ("focal_points", "national_commissions")
    assert feed_path(rules, "national_commission", "BD", "fr", "rss") == "country/BD.fr.rss"
    assert feed_path(rules, "public", "", "en", "atom") == "public.en.atom"
    assert feed_path(rules, "liaison_committee", "", "en", "atom") == "public.en.atom"


def test_settings_read_rules_from_home_when_it_has_them(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path).routing == BUNDLED
    local = tmp_path / "routing"
    local.mkdir()
    shutil.copy(BUNDLED / "audiences.toml", local / "audiences.toml")
    assert load_settings(home=tmp_path).routing == local
    assert load_rules(local).path == local / "audiences.toml"


def _rules_with(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "routing"
    folder.mkdir(exist_ok=True)
    text = (BUNDLED / "audiences.toml").read_text()
    assert old in text
    (folder / "audiences.toml").write_text(text.replace(old, new, 1))
    return folder


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'kinds = ["ngo_action", "ngo_plan", "programme_update"]',
            'kinds = ["ngo_actoin", "ngo_plan", "programme_update"]',
            "routing/audiences.toml: audiences.sector.rules[0].kinds: unknown kind 'ngo_actoin'",
        ),
        (
            'match = "own_ngo"',
            'match = "own_NGO"',
            "audiences.ngo.rules[0].match: unknown match 'own_NGO'",
        ),
        (
            'kinds = ["ngo_action"]\nmatch = "country"',
            'kinds = ["ngo_action"]\nmatch = "ngo_fields"',
            "audiences.national_commission.rules[0].match: matcher 'ngo_fields' does not apply "
            "to a country key",
        ),
        (
            'references = ["expert_ngos"]',
            'references = ["expert_ngo"]',
            "audiences.sector.references: unknown reference 'expert_ngo'",
        ),
        (
            "[audiences.public]",
            "[audiences.publik]",
            "audiences.publik: unknown audience 'publik'",
        ),
        (
            'key = "field_office"',
            'key = "office"',
            "audiences.field_office.key: expected one of",
        ),
        (
            "include_private = true\nreferences = []",
            'include_private = "yes"\nreferences = []',
            "audiences.field_office.include_private: expected true or false",
        ),
        (
            'audiences = ["member_state", "national_commission"]',
            'audiences = ["member_state", "sector"]',
            "feeds.country.audiences: audiences with different key types",
        ),
        ("[audiences.ngo]", "[audiences.ngo", "routing/audiences.toml: not valid TOML"),
    ],
)
def test_rules_file_errors_name_the_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    folder = _rules_with(tmp_path, old, new)
    with pytest.raises(RoutingError) as caught:
        load_rules(folder)
    assert message in str(caught.value)
    assert isinstance(caught.value, InvalidInput)


def test_a_missing_audience_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "routing"
    folder.mkdir()
    text = (BUNDLED / "audiences.toml").read_text()
    start = text.index("[audiences.public]")
    end = text.index("[feeds.public]")
    (folder / "audiences.toml").write_text(
        text[:start] + text[end:].replace('audiences = ["public"]', 'audiences = ["ngo"]')
    )
    with pytest.raises(RoutingError, match=r"audiences\.public: missing"):
        load_rules(folder)


def test_unknown_audience_or_key_names_it_and_what_exists() -> None:
    rules = load_rules(BUNDLED)
    with pytest.raises(UnknownAudience, match=r"unknown audience 'ngos'.*ngo, sector"):
        rules.audience("ngos")
    with pytest.raises(UnknownAudience, match=r"unknown Sector 'XX'; known: CI, CLT, ED, SC, SHS"):
        check_key(rules, "sector", "XX", directory())
    with pytest.raises(UnknownAudience, match=r"unknown organisation 'unesco'; known: icsc, ifla"):
        check_key(rules, "ngo", "unesco", directory())
    with pytest.raises(UnknownAudience, match=r"unknown Field Office 'paris'; known: apia"):
        check_key(rules, "field_office", "paris", directory())
    with pytest.raises(UnknownAudience, match=r"unknown country 'ZZ'"):
        check_key(rules, "member_state", "ZZ", directory())
    with pytest.raises(UnknownAudience, match=r"needs a key"):
        check_key(rules, "member_state", "", directory())
    with pytest.raises(UnknownAudience, match=r"takes no key"):
        check_key(rules, "public", "BD", directory())
    assert check_key(rules, "sector", "ed", directory()) == "ED"
    assert check_key(rules, "national_commission", "bd", directory()) == "BD"
