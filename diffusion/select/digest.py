"""Pick and group the items of one segment for one period: the digest, before rendering."""

import re
from collections.abc import Iterable
from datetime import datetime

from babel.dates import format_skeleton

from diffusion import i18n
from diffusion.contracts import Digest, DigestEntry, Period, ReferenceList, Section, Segment
from diffusion.errors import InvalidInput
from diffusion.models import SECTORS, Item, Organisation
from diffusion.select.directory import Directory
from diffusion.select.matchers import Routable, RoutingIndex, is_about, narrows_to, routes_to
from diffusion.select.rules import AudienceRules, RoutingRules
from diffusion.vocabulary import audience_title, columns, heading, sector_name


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
        guid=item.guid,
        public=item.public,
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
    language = segment.language
    in_period = [item for item in items if period.start <= item.published_at < period.end]
    candidates = [item for item in in_period if item.published_at <= now]
    # Each part (subscription) brings its items, ranked its own way; an item already brought
    # by an earlier part is not shown again.
    brought: list[tuple[Segment, Item]] = []
    seen: set[int] = set()
    parts = segment.parts  # made once: entries are matched to their part by identity
    for part in parts:
        for item in route(candidates, rules, part, directory, index=index):
            if id(item) not in seen:
                seen.add(id(item))
                brought.append((part, item))
    shown, left_out = brought[:max_items], brought[max_items:]
    several = len(parts) > 1
    sections = []
    for part in parts:
        reason = why(part, language, directory) if several else ""
        for kind in rules.audience(part.audience).kinds:
            entries = tuple(
                entry_for(item, language) for p, item in shown if p is part and item.kind == kind
            )
            more = sum(1 for p, item in left_out if p is part and item.kind == kind)
            if entries:
                words = heading(kind, language)
                if reason:
                    words = i18n.words(language).pgettext(
                        "section heading",
                        "%(heading)s · %(reason)s",
                        heading=words,
                        reason=_isolated(reason, language),
                    )
                sections.append(Section(kind, words, entries, more_count=more, reason=reason))
    references: list[ReferenceList] = []
    listed: set[tuple[str, str]] = set()
    for part in parts:
        for name in rules.audience(part.audience).references:
            # The directory and focal points are the same for everyone; expert NGOs are per Sector.
            which = (name, part.key if name == "expert_ngos" else "")
            if which not in listed:
                listed.add(which)
                references.append(
                    reference_list(name, part, directory, max_rows=max_items, period=period)
                )
    title = i18n.words(language).pgettext(
        "edition title",
        "%(title)s, %(period)s",
        title=_title(segment, language, directory),
        period=period_name(period, language),
    )
    return Digest(
        segment=segment,
        period=period,
        title=title,
        sections=tuple(sections),
        references=tuple(references),
        more_url=more_url,
        more_count=len(left_out),
    )


def why(part: Segment, language: str, directory: Directory) -> str:
    """Why an item reached the reader, in their words: the subscription that brought it."""
    return key_name(part.audience, part.key, language, directory) or audience_title(
        part.audience, language
    )


def _isolated(name: str, language: str) -> str:
    # "IFLA" keeps its place in an Arabic title or heading.
    return i18n.isolate(name) if name and i18n.direction(language) == "rtl" else name


def _title(segment: Segment, language: str, directory: Directory) -> str:
    if segment.also:
        names = i18n.format_items(
            (_isolated(why(part, language, directory), language) for part in segment.parts),
            language,
        )
        return i18n.words(language).pgettext(
            "edition title", "Your newsletter: %(names)s", names=names
        )
    who = _isolated(key_name(segment.audience, segment.key, language, directory), language)
    return audience_title(segment.audience, language, who)


def _changed_in(org: Organisation, period: Period | None) -> bool:
    return period is not None and period.start <= org.updated_at < period.end


def reference_list(
    name: str,
    segment: Segment,
    directory: Directory,
    *,
    max_rows: int,
    period: Period | None = None,
) -> ReferenceList:
    """A reference list for the segment: the NGO's Sectors first, the country's NGOs first.

    With a `period`, the NGO directory is in proportion to the news: for a country, the NGOs
    active in it and those whose entry changed in the period; for an audience without a key,
    those that changed. The rest is counted, to be found on the directory page.
    """
    language = segment.language
    if name == "national_commissions":
        countries: set[str] = set()
        if segment.audience == "ngo" and segment.key in directory.organisations:
            countries = {c.upper() for c in directory.organisations[segment.key].countries}
        elif segment.key:
            countries = {segment.key.upper()}
        commissions = sorted(
            (nc for code, nc in directory.national_commissions.items() if code in countries),
            key=lambda nc: nc.country,
        )
        nc_rows = [
            (nc.name, i18n.country_name(nc.country, language), nc.contact_name or "",
             nc.email or "", nc.website or "")
            for nc in commissions
        ]  # fmt: skip
        return ReferenceList(
            kind=name,
            heading=heading(name, language),
            columns=columns("national_commissions", language),
            rows=tuple(nc_rows[:max_rows]),
            more_count=max(0, len(nc_rows) - max_rows),
        )
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
        total = len(orgs)
        if name == "ngo_directory" and period is not None:
            key = segment.key.upper()
            orgs = [
                org
                for org in orgs
                if _changed_in(org, period) or (key and key in {c.upper() for c in org.countries})
            ]
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
        shown = rows[:max_rows]
        return ReferenceList(
            kind=name,
            heading=heading(name, language),
            columns=labels,
            rows=tuple(shown),
            more_count=total - len(shown),
        )
    return ReferenceList(
        kind=name,
        heading=heading(name, language),
        columns=labels,
        rows=tuple(rows[:max_rows]),
        more_count=max(0, len(rows) - max_rows),
    )
