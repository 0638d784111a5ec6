"""Pick and group the items of one segment for one period: the digest, before rendering."""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton

from diffusion import i18n
from diffusion.audiences import (
    AudienceRules,
    Directory,
    Routable,
    RoutingIndex,
    RoutingRules,
    is_about,
    narrows_to,
    routes_to,
)
from diffusion.errors import InvalidInput
from diffusion.models import SECTORS, Item, Subscriber
from diffusion.vocabulary import audience_title, columns, heading, sector_name

# The shapes below are the contract between the digest builder and the renderer (render.py):
# the builder fills them from the database, the renderer turns them into MJML, HTML and text.


@dataclass(frozen=True)
class Segment:
    """Subscribers who get the same edition: same audience, key, language, narrowing, cadence."""

    audience: str
    key: str = ""
    language: str = "en"
    cadence: str = "monthly"
    sectors: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Canonical text key, stored on editions: `ngo:ifla|fr|monthly|sectors=ED,SC|themes=`."""
        head = f"{self.audience}:{self.key}" if self.key else self.audience
        narrowing = "|".join(
            f"{name}={','.join(sorted(values))}"
            for name, values in (
                ("sectors", self.sectors),
                ("themes", self.themes),
                ("regions", self.regions),
            )
            if values
        )
        return "|".join(part for part in (head, self.language, self.cadence, narrowing) if part)

    @classmethod
    def of(cls, subscriber: Subscriber) -> "Segment":
        """The segment a subscriber belongs to; its `id` is what editions are stored under."""
        return cls(
            audience=subscriber.audience,
            key=subscriber.key,
            language=subscriber.language,
            cadence=subscriber.cadence,
            sectors=tuple(sorted(subscriber.sectors)),
            themes=tuple(sorted(subscriber.themes)),
            regions=tuple(sorted(subscriber.regions)),
        )


@dataclass(frozen=True)
class Period:
    """A calendar month (`2026-11`) or ISO week (`2026-W47`) in the configured time zone."""

    label: str
    start: datetime  # aware, inclusive
    end: datetime  # aware, exclusive

    @classmethod
    def parse(cls, label: str, zone: ZoneInfo) -> "Period":
        month = re.fullmatch(r"(\d{4})-(\d{2})", label)
        week = re.fullmatch(r"(\d{4})-W(\d{2})", label)
        if month and 1 <= int(month.group(2)) <= 12:
            year, number = int(month.group(1)), int(month.group(2))
            first = date(year, number, 1)
            after = date(year + number // 12, number % 12 + 1, 1)
        elif week:
            try:
                first = date.fromisocalendar(int(week.group(1)), int(week.group(2)), 1)
            except ValueError as exc:
                raise InvalidInput(f"period {label!r}: no such ISO week") from exc
            after = first + timedelta(days=7)
        else:
            raise InvalidInput(f"period {label!r}: expected YYYY-MM (month) or YYYY-Www (week)")
        return cls(label, _midnight(first, zone), _midnight(after, zone))

    @classmethod
    def containing(cls, moment: datetime, cadence: str, zone: ZoneInfo) -> "Period":
        """The month or week that `moment` falls in."""
        local = moment.astimezone(zone).date()
        if cadence == "weekly":
            year, week, _ = local.isocalendar()
            return cls.parse(f"{year}-W{week:02d}", zone)
        return cls.parse(f"{local.year}-{local.month:02d}", zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


@dataclass(frozen=True)
class DigestEntry:
    """One item as the reader sees it, in the reader's language where a translation exists."""

    item_id: int
    kind: str
    title: str
    summary: str
    body_html: str  # sanitised at collection
    link: str | None
    language: str  # the language the entry is shown in
    published_at: datetime
    tags: dict[str, list[str]] = field(default_factory=dict)
    # Set when no version in the reader's language exists: the entry is shown in `language`.
    fallback: bool = False


@dataclass(frozen=True)
class Section:
    """A heading and its entries; `kind` is a content kind or a reference list name."""

    kind: str
    heading: str
    entries: tuple[DigestEntry, ...]
    more_count: int = 0  # entries left out by the cap, shown online


@dataclass(frozen=True)
class ReferenceList:
    """A reference list: focal points, a Sector's expert NGOs, or the NGO directory."""

    kind: str  # "focal_points", "expert_ngos" or "ngo_directory"
    heading: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    more_count: int = 0


@dataclass(frozen=True)
class Digest:
    """Everything one segment receives for one period, before rendering."""

    segment: Segment
    period: Period
    title: str  # e.g. "IFLA: NGO partners' newsletter, November 2026"
    sections: tuple[Section, ...]
    references: tuple[ReferenceList, ...] = ()
    more_url: str | None = None  # where the rest is online (archive or feed)
    more_count: int = 0  # entries left out by the cap, all sections together

    @property
    def item_count(self) -> int:
        return sum(len(section.entries) for section in self.sections)

    @property
    def is_empty(self) -> bool:
        return self.item_count == 0


# --- the builder -----------------------------------------------------------------------------


def period_name(period: Period, language: str) -> str:
    """`November 2026` / `novembre 2026`, or `week 47, 2026` for a week."""
    week = re.fullmatch(r"(\d{4})-W(\d{2})", period.label)
    if week:
        return i18n.words(language).pgettext(
            "period",
            "week %(week)s, %(year)s",
            week=i18n.format_number(int(week.group(2)), language),
            year=format_skeleton("y", period.start.date(), locale=i18n.locale_for(language)),
        )
    try:
        return i18n.format_month(period.start, language)
    except InvalidInput:
        return period.label


def key_name(audience: str, key: str, language: str, directory: Directory) -> str:
    """How the reader names the audience key: IFLA, Education, UNESCO Dhaka Office, Bangladesh."""
    if not key:
        return ""
    if audience == "ngo" and key in directory.organisations:
        org = directory.organisations[key]
        return org.acronym or org.name
    if audience == "sector" and key in SECTORS:
        return sector_name(key, language)
    if audience == "field_office" and key in directory.offices:
        return directory.offices[key].name
    if audience in ("member_state", "national_commission"):
        return i18n.country_name(key, language)
    return key


def entry_for(item: Item, language: str) -> DigestEntry:
    """The item in the reader's language: its own, a translation, else another with `fallback`."""
    assert item.id is not None, "items are routed after they are stored"
    text = {"title": item.title, "summary": item.summary, "body_html": item.body_html}
    link = item.link
    shown = item.language
    if item.language != language and language in item.translations:
        translation = item.translations[language]
        text = {name: translation.get(name) or value for name, value in text.items()}
        link = translation.get("link") or link
        shown = language
    return DigestEntry(
        item_id=item.id,
        kind=item.kind,
        title=text["title"],
        summary=text["summary"],
        body_html=text["body_html"],
        link=link,
        language=shown,
        published_at=item.published_at,
        tags={name: list(values) for name, values in sorted(item.tags.items()) if values},
        fallback=shown != language,
    )


def rank(
    items: Iterable[Item], spec: AudienceRules, key: str, index: RoutingIndex | None = None
) -> list[Item]:
    """Items about the key itself first, then the newest; the id settles ties for stable output."""
    view = index.view if index is not None else Routable.of
    return sorted(
        items,
        key=lambda item: (
            not is_about(view(item), spec, key),
            -item.published_at.timestamp(),
            item.id or 0,
        ),
    )


def route(
    items: Iterable[Item],
    rules: RoutingRules,
    segment: Segment,
    directory: Directory,
    *,
    public_only: bool = False,
    index: RoutingIndex | None = None,
) -> list[Item]:
    """The items the segment's audience, key and narrowing let through, ranked."""
    spec = rules.audience(segment.audience)
    view = index.view if index is not None else Routable.of
    chosen = []
    for item in items:
        seen = view(item)
        if routes_to(seen, spec, segment.key, directory, public_only=public_only) and narrows_to(
            seen, segment.sectors, segment.themes, segment.regions
        ):
            chosen.append(item)
    return rank(chosen, spec, segment.key, index)


def build_digest(
    items: Iterable[Item],
    directory: Directory,
    rules: RoutingRules,
    *,
    segment: Segment,
    period: Period,
    now: datetime,
    max_items: int,
    more_url: str | None = None,
    index: RoutingIndex | None = None,
) -> Digest:
    """Route, rank, cap and group the period's items for one segment, with its reference lists.

    `items` may hold more than the period: only those published in [period.start, period.end)
    and not after `now` are considered. `index` (made once for many segments) saves re-reading
    each item's tags.
    """
    spec = rules.audience(segment.audience)
    language = segment.language
    in_period = [item for item in items if period.start <= item.published_at < period.end]
    ranked = route(
        [item for item in in_period if item.published_at <= now],
        rules,
        segment,
        directory,
        index=index,
    )
    shown, left_out = ranked[:max_items], ranked[max_items:]
    sections = []
    for kind in spec.kinds:
        entries = tuple(entry_for(item, language) for item in shown if item.kind == kind)
        more = sum(1 for item in left_out if item.kind == kind)
        if entries:
            sections.append(Section(kind, heading(kind, language), entries, more_count=more))
    who = key_name(segment.audience, segment.key, language, directory)
    if who and i18n.direction(language) == "rtl":
        who = i18n.isolate(who)  # "IFLA" keeps its place at the start of an Arabic title
    title = i18n.words(language).pgettext(
        "edition title",
        "%(title)s, %(period)s",
        title=audience_title(segment.audience, language, who),
        period=period_name(period, language),
    )
    return Digest(
        segment=segment,
        period=period,
        title=title,
        sections=tuple(sections),
        references=tuple(
            reference_list(name, segment, directory, max_rows=max_items) for name in spec.references
        ),
        more_url=more_url,
        more_count=len(left_out),
    )


def reference_list(
    name: str, segment: Segment, directory: Directory, *, max_rows: int
) -> ReferenceList:
    """A reference list for the segment: the NGO's Sectors first, the country's NGOs first."""
    language = segment.language
    if name == "focal_points":
        own = set()
        if segment.audience == "ngo" and segment.key in directory.organisations:
            own = {code.upper() for code in directory.organisations[segment.key].sectors}
        points = sorted(
            directory.focal_points,
            key=lambda point: (point.sector_code not in own, point.sector_code, point.name),
        )
        rows: list[tuple[str, ...]] = [
            (sector_name(p.sector_code, language), p.name, p.email, p.role or "") for p in points
        ]
        labels = columns("focal_points", language)
    else:
        orgs = sorted(directory.organisations.values(), key=lambda org: org.name.lower())
        if name == "expert_ngos":
            orgs = [org for org in orgs if segment.key.upper() in {s.upper() for s in org.sectors}]
        elif segment.key:  # the NGO directory, the NGOs active in the country first
            orgs.sort(key=lambda org: segment.key.upper() not in {c.upper() for c in org.countries})
        rows = [
            (
                org.name + (f" ({org.acronym})" if org.acronym else ""),
                i18n.format_items(
                    [sector_name(code, language) for code in sorted(org.sectors)]
                    + sorted(org.themes),
                    language,
                ),
                i18n.format_items(
                    [i18n.country_name(code, language) for code in sorted(org.countries)],
                    language,
                ),
                org.contact_email or "",
                org.website or "",
            )
            for org in orgs
        ]
        labels = columns("organisations", language)
    return ReferenceList(
        kind=name,
        heading=heading(name, language),
        columns=labels,
        rows=tuple(rows[:max_rows]),
        more_count=max(0, len(rows) - max_rows),
    )
