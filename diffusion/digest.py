"""Pick and group the items of one segment for one period: the digest, before rendering."""

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from diffusion.errors import InvalidInput
from diffusion.models import Subscriber

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

    @property
    def item_count(self) -> int:
        return sum(len(section.entries) for section in self.sections)

    @property
    def is_empty(self) -> bool:
        return self.item_count == 0
