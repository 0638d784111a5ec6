"""Routing rules: which items reach which audience and key, as editors write them in TOML."""

import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from diffusion import validate
from diffusion.errors import InvalidInput, UnknownAudience
from diffusion.models import (
    AUDIENCES,
    CONTENT_KINDS,
    REFERENCE_LISTS,
    SECTORS,
    FieldOffice,
    FocalPoint,
    Forum,
    Item,
    NationalCommission,
    Organisation,
)

RULES_FILE = "audiences.toml"
KEY_TYPES = ("organisation", "sector", "field_office", "country", "none")
# Which matchers make sense for which kind of audience key (see the comments in audiences.toml).
MATCHERS: dict[str, tuple[str, ...]] = {
    "any": KEY_TYPES,
    "own_ngo": ("organisation",),
    "ngo_countries": ("organisation",),
    "ngo_fields": ("organisation",),
    "sector": ("sector", "organisation"),
    "country": ("country",),
    "office_countries": ("field_office", "country"),
    "forum": ("sector", "country"),
}


class RoutingError(InvalidInput):
    """The routing rules file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Rule:
    """Items of these kinds pass when any matcher holds for the audience key."""

    kinds: tuple[str, ...]
    match: tuple[str, ...]
    include_private: bool


@dataclass(frozen=True)
class AudienceRules:
    """One audience: what its key names, which rules route items to it, its reference lists."""

    name: str
    label: str
    key_type: str
    include_private: bool
    rules: tuple[Rule, ...]
    references: tuple[str, ...]
    # Addresses of these domains (and their subdomains) are approved at once for the audience.
    approved_domains: tuple[str, ...] = ()
    # An NGO's digest: addresses of the domain of the NGO's own contact address are approved.
    approve_own_domain: bool = False

    @property
    def kinds(self) -> tuple[str, ...]:
        """The content kinds it receives, in the order the rules name them (the section order)."""
        seen: dict[str, None] = {}
        for rule in self.rules:
            seen.update(dict.fromkeys(rule.kinds))
        return tuple(seen)


@dataclass(frozen=True)
class FeedFamily:
    """A family of public feeds (`sector/ED.en.atom`) and the audiences whose rules it uses."""

    name: str
    audiences: tuple[str, ...]
    key_type: str


@dataclass(frozen=True)
class RoutingRules:
    """Every audience's rules and the feed families, as loaded and checked from the rules file."""

    path: Path
    audiences: Mapping[str, AudienceRules]
    feeds: Mapping[str, FeedFamily]

    def audience(self, name: str) -> AudienceRules:
        try:
            return self.audiences[name]
        except KeyError:
            raise UnknownAudience(
                f"unknown audience {name!r}; the rules in {self.path} define: "
                f"{', '.join(self.audiences)}"
            ) from None


@dataclass(frozen=True)
class Directory:
    """A snapshot of the directory the routing looks at: NGOs, offices, forums, focal points."""

    organisations: Mapping[str, Organisation] = field(default_factory=dict)
    offices: Mapping[str, FieldOffice] = field(default_factory=dict)
    forums: Mapping[str, Forum] = field(default_factory=dict)
    focal_points: Sequence[FocalPoint] = ()
    national_commissions: Mapping[str, NationalCommission] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        organisations: Iterable[Organisation] = (),
        offices: Iterable[FieldOffice] = (),
        forums: Iterable[Forum] = (),
        focal_points: Iterable[FocalPoint] = (),
        national_commissions: Iterable[NationalCommission] = (),
    ) -> "Directory":
        return cls(
            organisations={org.slug: org for org in organisations},
            offices={office.code: office for office in offices},
            forums={forum.slug: forum for forum in forums},
            focal_points=tuple(focal_points),
            national_commissions={nc.country.upper(): nc for nc in national_commissions},
        )

    def countries(self) -> set[str]:
        """Every country an NGO works in or an office covers."""
        found: set[str] = set()
        for org in self.organisations.values():
            found.update(org.countries)
        for office in self.offices.values():
            found.update(office.countries)
            found.add(office.country)
        return {code.upper() for code in found}


# --- loading -------------------------------------------------------------------------------


def load_rules(folder: Path) -> RoutingRules:
    """Read and check `folder/audiences.toml`; every mistake names the file and key."""
    path = folder / RULES_FILE
    where = _display(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoutingError(
            f"{where}: no routing rules file; copy the bundled subscribers/{RULES_FILE} there"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise RoutingError(f"{where}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"audiences", "feeds"}
    if unknown:
        raise RoutingError(
            f"{where}: {sorted(unknown)[0]}: unknown table; expected audiences, feeds"
        )
    raw_audiences = _table(data.get("audiences"), where, "audiences")
    audiences: dict[str, AudienceRules] = {}
    for name, raw in raw_audiences.items():
        audiences[name] = _audience(name, raw, where)
    missing = [name for name in AUDIENCES if name not in audiences]
    if missing:
        raise RoutingError(f"{where}: audiences.{missing[0]}: missing; every audience needs rules")
    feeds: dict[str, FeedFamily] = {}
    for name, raw in _table(data.get("feeds", {}), where, "feeds").items():
        feeds[name] = _feed_family(name, raw, audiences, where)
    return RoutingRules(path=path, audiences=audiences, feeds=feeds)


def _display(path: Path) -> str:
    """`subscribers/audiences.toml` for the usual layout, else the full path."""
    return f"{path.parent.name}/{path.name}" if path.parent.name == "subscribers" else str(path)


def _table(value: Any, where: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RoutingError(f"{where}: {key}: expected a table")
    return value


def _strings(value: Any, where: str, key: str, allowed: Sequence[str]) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise RoutingError(f"{where}: {key}: expected a string or a list of strings")
    for item in items:
        if item not in allowed:
            raise RoutingError(
                f"{where}: {key}: unknown {key.rsplit('.', 1)[-1].rstrip('s')} {item!r}; "
                f"expected one of {', '.join(allowed)}"
            )
    return tuple(items)


def _bool(value: Any, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise RoutingError(f"{where}: {key}: expected true or false")
    return value


def _audience(name: str, raw: Any, where: str) -> AudienceRules:
    key = f"audiences.{name}"
    if name not in AUDIENCES:
        raise RoutingError(
            f"{where}: {key}: unknown audience {name!r}; expected one of {', '.join(AUDIENCES)}"
        )
    raw = _table(raw, where, key)
    allowed = {
        "label",
        "key",
        "include_private",
        "references",
        "rules",
        "approved_domains",
        "approve_own_domain",
    }
    for extra in sorted(set(raw) - allowed):
        raise RoutingError(f"{where}: {key}.{extra}: unknown setting; expected {sorted(allowed)}")
    key_type = raw.get("key")
    if key_type not in KEY_TYPES:
        raise RoutingError(
            f"{where}: {key}.key: expected one of {', '.join(KEY_TYPES)}, not {key_type!r}"
        )
    include_private = _bool(raw.get("include_private", False), where, f"{key}.include_private")
    references = _strings(raw.get("references", []), where, f"{key}.references", REFERENCE_LISTS)
    raw_rules = raw.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RoutingError(f"{where}: {key}.rules: expected at least one [[{key}.rules]] table")
    rules = []
    for index, raw_rule in enumerate(raw_rules):
        rule_key = f"{key}.rules[{index}]"
        raw_rule = _table(raw_rule, where, rule_key)
        for extra in sorted(set(raw_rule) - {"kinds", "match", "include_private"}):
            raise RoutingError(
                f"{where}: {rule_key}.{extra}: unknown setting; expected kinds, match, "
                "include_private"
            )
        if "kinds" not in raw_rule or "match" not in raw_rule:
            raise RoutingError(f"{where}: {rule_key}: needs both kinds and match")
        kinds = _strings(raw_rule["kinds"], where, f"{rule_key}.kinds", CONTENT_KINDS)
        match = _strings(raw_rule["match"], where, f"{rule_key}.match", tuple(MATCHERS))
        for matcher in match:
            if key_type not in MATCHERS[matcher]:
                raise RoutingError(
                    f"{where}: {rule_key}.match: matcher {matcher!r} does not apply to a "
                    f"{key_type} key; it applies to: {', '.join(MATCHERS[matcher])}"
                )
        private = raw_rule.get("include_private", include_private)
        rules.append(Rule(kinds, match, _bool(private, where, f"{rule_key}.include_private")))
    domains = raw.get("approved_domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        raise RoutingError(f"{where}: {key}.approved_domains: expected a list of domains")
    return AudienceRules(
        name=name,
        label=str(raw.get("label", name)),
        key_type=key_type,
        include_private=include_private,
        rules=tuple(rules),
        references=references,
        approved_domains=tuple(d.strip().lower().lstrip("@.") for d in domains),
        approve_own_domain=_bool(
            raw.get("approve_own_domain", False), where, f"{key}.approve_own_domain"
        ),
    )


def _feed_family(
    name: str, raw: Any, audiences: Mapping[str, AudienceRules], where: str
) -> FeedFamily:
    key = f"feeds.{name}"
    raw = _table(raw, where, key)
    names = _strings(raw.get("audiences", []), where, f"{key}.audiences", tuple(audiences))
    if not names:
        raise RoutingError(f"{where}: {key}.audiences: name at least one audience")
    key_types = {audiences[audience].key_type for audience in names}
    if len(key_types) != 1:
        raise RoutingError(
            f"{where}: {key}.audiences: audiences with different key types {sorted(key_types)}"
        )
    return FeedFamily(name=name, audiences=names, key_type=key_types.pop())


# --- query-time checks -----------------------------------------------------------------------


def check_key(rules: RoutingRules, audience: str, key: str, directory: Directory) -> str:
    """The key in its canonical spelling, or UnknownAudience naming it and what exists."""
    spec = rules.audience(audience)
    return _check_key_type(spec.key_type, audience, key, directory)


def _check_key_type(key_type: str, audience: str, key: str, directory: Directory) -> str:
    def unknown(what: str, known: Iterable[str], hint: str = "") -> UnknownAudience:
        listed = ", ".join(sorted(known)) or "none yet (import the directory first)"
        return UnknownAudience(f"{audience}: unknown {what} {key!r}; known: {listed}{hint}")

    key = key.strip()
    if key_type == "none":
        if key:
            raise UnknownAudience(f"key {key!r}: audience {audience} takes no key; leave it empty")
        return ""
    if not key:
        raise UnknownAudience(
            f"key: missing; audience {audience} needs one (every {audience} subscription "
            f"needs a key naming a {key_type.replace('_', ' ')}, e.g. {audience}:KEY)"
        )
    if key_type == "sector":
        try:
            return validate.sector(key)
        except InvalidInput:
            raise unknown("Sector", SECTORS) from None
    if key_type == "country":
        try:
            return validate.country(key)
        except InvalidInput:
            raise UnknownAudience(
                f"country {key!r}: unknown country {key!r} for audience {audience}; "
                "give an ISO 3166-1 alpha-2 code such as BD"
            ) from None
    new_row = "; import the directory first (diffusion directory import) if it is new"
    if key_type == "field_office":
        found = _canonical(key, directory.offices)
        if found is None:
            hint = f"; there is no Field Office with this code in the directory{new_row}"
            raise unknown("Field Office", directory.offices, hint)
        return found
    found = _canonical(key, directory.organisations)
    if found is None:
        hint = f"; there is no organisation with this slug in the directory{new_row}"
        raise unknown("organisation", directory.organisations, hint)
    return found


def _canonical(key: str, known: Mapping[str, object]) -> str | None:
    """The known spelling of a slug or office code, whatever the case it was given in."""
    if key in known:
        return key
    folded = key.casefold()
    return next((name for name in known if name.casefold() == folded), None)


def read_directory(session: Session) -> Directory:
    """The directory as plain rows, read once per job or import."""
    return Directory.of(
        organisations=session.exec(select(Organisation)).all(),
        offices=session.exec(select(FieldOffice)).all(),
        forums=session.exec(select(Forum)).all(),
        focal_points=session.exec(select(FocalPoint)).all(),
        national_commissions=session.exec(select(NationalCommission)).all(),
    )


# --- matching --------------------------------------------------------------------------------


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


def parse_audience(text: str) -> tuple[str, str | None]:
    """`sector` -> ("sector", None); `sector:ED` -> ("sector", "ED")."""
    name, sep, key = text.partition(":")
    return name.strip(), (key.strip() if sep else None)


def feed_path(rules: RoutingRules, audience: str, key: str, language: str, ext: str) -> str | None:
    """The public feed that carries an audience key's items: `country/BD.fr.atom`.

    An audience in no feed family (the Liaison Committee) is pointed at the public feed.
    """
    for family in rules.feeds.values():
        if audience in family.audiences:
            stem = f"{family.name}/{key}" if family.key_type != "none" else family.name
            return f"{stem}.{language}.{ext}"
    if "public" in rules.feeds:
        return f"public.{language}.{ext}"
    return None
