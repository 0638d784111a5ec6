"""Matchers: which items reach which audience and key, through an index of the items."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from diffusion.models import (
    Forum,
    Item,
)
from diffusion.select.directory import Directory
from diffusion.select.rules import AudienceRules


@dataclass(frozen=True, slots=True)
class Routable:
    """What routing reads of an item, as plain sets: made once per item, matched many times."""

    kind: str
    public: bool
    codes: Mapping[str, frozenset[str]]  # each tag's values, upper-cased (Sectors, countries...)
    names: Mapping[str, frozenset[str]]  # each tag's values as written (slugs, office codes)
    themes: frozenset[str]  # lower-cased

    @classmethod
    def of(cls, item: "Item | Routable") -> "Routable":
        if isinstance(item, Routable):
            return item
        tags = item.tags or {}
        return cls(
            kind=item.kind,
            public=item.public,
            codes={name: frozenset(v.upper() for v in values) for name, values in tags.items()},
            names={name: frozenset(values) for name, values in tags.items()},
            themes=frozenset(theme.lower() for theme in tags.get("themes", ())),
        )

    def code(self, tag: str) -> frozenset[str]:
        return self.codes.get(tag, frozenset())

    def name(self, tag: str) -> frozenset[str]:
        return self.names.get(tag, frozenset())


class RoutingIndex:
    """Routable views of a batch of items, made once and reused for every segment and feed."""

    def __init__(self, items: Iterable[Item]) -> None:
        self._items = list(items)  # holds the items, so that their ids stay theirs
        self._views = {id(item): Routable.of(item) for item in self._items}

    def view(self, item: Item) -> Routable:
        found = self._views.get(id(item))
        return found if found is not None else Routable.of(item)


def _upper(values: Iterable[str]) -> set[str]:
    return {value.upper() for value in values}


def _item_countries(item: Routable, directory: Directory) -> set[str]:
    """The item's countries, and those covered by the offices it is tagged with."""
    countries = set(item.code("countries"))
    for code in item.name("field_offices"):
        office = directory.offices.get(code)
        if office is not None:
            countries.update(_upper(office.countries))
    return countries


def _forums(item: Routable, directory: Directory) -> list[Forum]:
    return [directory.forums[slug] for slug in item.name("forums") if slug in directory.forums]


def _own_ngo(item: Routable, key: str, key_type: str, directory: Directory) -> bool:
    return key in item.name("organisations")


def _ngo_countries(item: Routable, key: str, key_type: str, directory: Directory) -> bool:
    org = directory.organisations.get(key)
    return org is not None and bool(_item_countries(item, directory) & _upper(org.countries))


def _ngo_fields(item: Routable, key: str, key_type: str, directory: Directory) -> bool:
    org = directory.organisations.get(key)
    if org is None:
        return False
    if item.code("sectors") & _upper(org.sectors):
        return True
    return bool(item.themes & ({theme.lower() for theme in org.themes} | _lower(org.sectors)))


def _lower(values: Iterable[str]) -> set[str]:
    return {value.lower() for value in values}


def _sector(item: Routable, key: str, key_type: str, directory: Directory) -> bool:
    sectors = item.code("sectors")
    if key_type == "organisation":
        org = directory.organisations.get(key)
        return org is not None and bool(sectors & _upper(org.sectors))
    return key.upper() in sectors


def _country(item: Routable, key: str, key_type: str, directory: Directory) -> bool:
    return key.upper() in item.code("countries")


def _office_countries(item: Routable, key: str, key_type: str, directory: Directory) -> bool:
    offices = item.name("field_offices")
    if key_type == "field_office":
        if key in offices:
            return True
        office = directory.offices.get(key)
        return office is not None and bool(item.code("countries") & _upper(office.countries))
    return any(
        key.upper() in _upper(directory.offices[code].countries)
        for code in offices
        if code in directory.offices
    )


def _forum(item: Routable, key: str, key_type: str, directory: Directory) -> bool:
    forums = _forums(item, directory)
    wanted = key.upper()
    if key_type == "sector":
        if wanted in item.code("sectors") or wanted in item.code("themes"):
            return True
        return any(wanted in _upper(forum.sectors) | _upper(forum.themes) for forum in forums)
    if wanted in item.code("countries"):
        return True
    return any(wanted in _upper(forum.countries) for forum in forums)


def _any(item: Routable, key: str, key_type: str, directory: Directory) -> bool:
    return True


_MATCH: dict[str, Callable[[Routable, str, str, Directory], bool]] = {
    "any": _any,
    "own_ngo": _own_ngo,
    "ngo_countries": _ngo_countries,
    "ngo_fields": _ngo_fields,
    "sector": _sector,
    "country": _country,
    "office_countries": _office_countries,
    "forum": _forum,
}


def routes_to(
    item: Item | Routable,
    spec: AudienceRules,
    key: str,
    directory: Directory,
    *,
    public_only: bool = False,
) -> bool:
    """Whether the audience's rules send the item to the audience key."""
    view = Routable.of(item)
    for rule in spec.rules:
        if view.kind not in rule.kinds:
            continue
        if not view.public and (public_only or not rule.include_private):
            continue
        if any(_MATCH[name](view, key, spec.key_type, directory) for name in rule.match):
            return True
    return False


def is_about(item: Item | Routable, spec: AudienceRules, key: str) -> bool:
    """Whether the item names the key itself (ranked first), not only something related to it."""
    view = Routable.of(item)
    if spec.key_type in ("organisation", "field_office"):
        tag = "organisations" if spec.key_type == "organisation" else "field_offices"
        return key in view.name(tag)
    if spec.key_type in ("sector", "country"):
        return key.upper() in view.code("sectors" if spec.key_type == "sector" else "countries")
    return False


def narrows_to(
    item: Item | Routable, sectors: Sequence[str], themes: Sequence[str], regions: Sequence[str]
) -> bool:
    """A subscriber's narrowing: each chosen dimension must be met by one of its values."""
    view = Routable.of(item)
    if sectors and not view.code("sectors") & _upper(sectors):
        return False
    if themes and not view.themes & _lower(themes):
        return False
    return not (regions and not view.code("regions") & _upper(regions))
