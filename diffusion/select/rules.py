"""Routing rules: which items reach which audience and key, as editors write them in TOML."""

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffusion.errors import InvalidInput, UnknownAudience
from diffusion.models import (
    AUDIENCES,
    CONTENT_KINDS,
    REFERENCE_LISTS,
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


# --- loading -------------------------------------------------------------------------------


def load_rules(folder: Path) -> RoutingRules:
    """Read and check `folder/audiences.toml`; every mistake names the file and key."""
    path = folder / RULES_FILE
    where = _display(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoutingError(
            f"{where}: no routing rules file; copy the bundled routing/{RULES_FILE} there"
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
    """`routing/audiences.toml` for the usual layout, else the full path."""
    return f"{path.parent.name}/{path.name}" if path.parent.name == "routing" else str(path)


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


# --- matching --------------------------------------------------------------------------------


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
