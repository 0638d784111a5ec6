"""Which keys of a feed family an item reaches, found from indexes of the directory.

Trying every key for every item costs keys x items (300 NGOs, Sectors, offices and countries
against 10,000 items). Each matcher instead names the few keys it could hold for (the NGOs
active in the item's countries, the item's own Sectors...); `routes_to` then decides for those
only, so the answer is the one trying every key gives.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet

from diffusion.select.directory import Directory
from diffusion.select.matchers import Routable, routes_to
from diffusion.select.rules import AudienceRules


class KeyIndex:
    """The keys of one family, and the directory's rows by country, Sector and field."""

    def __init__(self, keys: Sequence[str], key_type: str, directory: Directory) -> None:
        self.keys = list(keys)
        self.key_type = key_type
        self.directory = directory
        self._known = set(self.keys)
        self._by_upper: dict[str, list[str]] = defaultdict(list)
        for key in self.keys:
            self._by_upper[key.upper()].append(key)
        self._orgs_by_country: dict[str, set[str]] = defaultdict(set)
        self._orgs_by_sector: dict[str, set[str]] = defaultdict(set)
        self._orgs_by_field: dict[str, set[str]] = defaultdict(set)
        for slug, org in directory.organisations.items():
            for country in org.countries:
                self._orgs_by_country[country.upper()].add(slug)
            for sector in org.sectors:
                self._orgs_by_sector[sector.upper()].add(slug)
                self._orgs_by_field[sector.lower()].add(slug)
            for theme in org.themes:
                self._orgs_by_field[theme.lower()].add(slug)
        self._offices_by_country: dict[str, set[str]] = defaultdict(set)
        for code, office in directory.offices.items():
            for country in office.countries:
                self._offices_by_country[country.upper()].add(code)

    def _upper(self, values: Iterable[str]) -> set[str]:
        return {key for value in values for key in self._by_upper.get(value.upper(), ())}

    def _item_countries(self, item: Routable) -> set[str]:
        countries = set(item.code("countries"))
        for code in item.name("field_offices"):
            office = self.directory.offices.get(code)
            if office is not None:
                countries.update(country.upper() for country in office.countries)
        return countries

    def _candidates(self, item: Routable, matcher: str) -> set[str] | None:
        """A superset of the keys `matcher` holds for; None when it could be any."""
        directory = self.directory
        organisation = self.key_type == "organisation"
        if matcher == "own_ngo":
            return set(item.name("organisations"))
        if matcher == "ngo_countries":
            return {
                slug
                for country in self._item_countries(item)
                for slug in self._orgs_by_country.get(country, ())
            }
        if matcher == "ngo_fields":
            found = {s for code in item.code("sectors") for s in self._orgs_by_sector.get(code, ())}
            found.update(s for theme in item.themes for s in self._orgs_by_field.get(theme, ()))
            return found
        if matcher == "sector":
            if organisation:
                return {
                    s for code in item.code("sectors") for s in self._orgs_by_sector.get(code, ())
                }
            return self._upper(item.code("sectors"))
        if matcher == "country":
            return self._upper(item.code("countries"))
        forums = [directory.forums[s] for s in item.name("forums") if s in directory.forums]
        if matcher == "office_countries":
            offices = item.name("field_offices")
            if self.key_type == "field_office":
                found = set(offices)
                for country in item.code("countries"):
                    found.update(self._offices_by_country.get(country, ()))
                return found
            covered = [
                country
                for code in offices
                if code in directory.offices
                for country in directory.offices[code].countries
            ]
            return self._upper(covered)
        if matcher == "forum":
            if self.key_type == "sector":
                words = set(item.code("sectors")) | set(item.code("themes"))
                for forum in forums:
                    words.update(forum.sectors)
                    words.update(forum.themes)
                return self._upper(words)
            places = set(item.code("countries"))
            for forum in forums:
                places.update(forum.countries)
            return self._upper(places)
        return None  # "any", or a matcher this index does not know

    def reached(
        self, item: Routable, specs: Sequence[AudienceRules], skip: AbstractSet[str] = frozenset()
    ) -> list[str]:
        """The keys the audiences' rules send the public item to, but for those in `skip`."""
        if not item.public:
            return []
        candidates: set[str] = set()
        for spec in specs:
            for rule in spec.rules:
                if item.kind not in rule.kinds:
                    continue
                for matcher in rule.match:
                    found = self._candidates(item, matcher)
                    if found is None:
                        candidates = set(self.keys)
                        break
                    candidates |= found
                if len(candidates) == len(self.keys):
                    break
        return [
            key
            for key in (candidates & self._known) - skip
            if any(routes_to(item, spec, key, self.directory, public_only=True) for spec in specs)
        ]
