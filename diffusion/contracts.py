"""The plain data that crosses the stages: segments, periods, digests, editions, recipients.

Every stage may import this module, and it imports no stage: the digest builder (select/) fills
these shapes from the database, the renderer (render/) turns them into MJML, HTML and text,
and delivery reads what was stored.
"""

import dataclasses
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from diffusion.errors import InvalidInput


@dataclass(frozen=True)
class Segment:
    """People who get the same edition: the same subscriptions, language and cadence.

    A segment of one subscription names its audience, key and narrowing here; a person's other
    subscriptions of the same language and cadence are its `also` parts, so that they get one
    newsletter holding what each brings. The first part is the most private one (public last):
    an edition is listed publicly only when every part of it is public.
    """

    audience: str
    key: str = ""
    language: str = "en"
    cadence: str = "monthly"
    sectors: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    also: tuple["Segment", ...] = ()

    @property
    def parts(self) -> tuple["Segment", ...]:
        """Each subscription of the segment as a one-part segment, the first one first."""
        return (dataclasses.replace(self, also=()), *self.also)

    def _head(self) -> str:
        return f"{self.audience}:{self.key}" if self.key else self.audience

    def _narrowing(self, separator: str) -> str:
        return separator.join(
            f"{name}={','.join(sorted(values))}"
            for name, values in (
                ("sectors", self.sectors),
                ("themes", self.themes),
                ("regions", self.regions),
            )
            if values
        )

    @functools.cached_property
    def id(self) -> str:
        """Canonical text key, stored on editions: `ngo:ifla|fr|monthly|sectors=ED,SC|themes=`;
        with several subscriptions `national_commission:BD+sector:ED;sectors=ED|en|monthly`."""
        if not self.also:
            narrowing = self._narrowing("|")
            return "|".join(
                part for part in (self._head(), self.language, self.cadence, narrowing) if part
            )
        heads = "+".join(
            ";".join(piece for piece in (part._head(), part._narrowing(";")) if piece)
            for part in self.parts
        )
        return f"{heads}|{self.language}|{self.cadence}"

    @classmethod
    def of(cls, subscriber: Any) -> "Segment":
        """The one-part segment of an object with audience, key, language, cadence, narrowing."""
        return cls(
            audience=subscriber.audience,
            key=subscriber.key,
            language=subscriber.language,
            cadence=subscriber.cadence,
            sectors=tuple(sorted(subscriber.sectors)),
            themes=tuple(sorted(subscriber.themes)),
            regions=tuple(sorted(subscriber.regions)),
        )

    @classmethod
    def of_person(cls, language: str, subscriptions: Iterable[Any]) -> "Segment":
        """The segment of a person's active subscriptions of one cadence, in their language."""
        parts = sorted(
            (
                cls(
                    audience=s.audience,
                    key=s.key,
                    language=language,
                    cadence=s.cadence,
                    sectors=tuple(sorted(s.sectors)),
                    themes=tuple(sorted(s.themes)),
                    regions=tuple(sorted(s.regions)),
                )
                for s in subscriptions
            ),
            key=lambda part: (part.audience == "public", part.audience, part.key, part.id),
        )
        if not parts:
            raise ValueError("a segment needs at least one subscription")
        if len({part.cadence for part in parts}) != 1:
            raise ValueError("a segment's subscriptions share one cadence")
        return dataclasses.replace(parts[0], also=tuple(parts[1:]))


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

    @property
    def cadence(self) -> str:
        """The cadence whose editions cover this period: weekly for a week, else monthly."""
        return "weekly" if "-W" in self.label else "monthly"

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
    guid: str = ""
    public: bool = True  # only a public item has a web page of its own


@dataclass(frozen=True)
class Section:
    """A heading and its entries; `kind` is a content kind or a reference list name."""

    kind: str
    heading: str
    entries: tuple[DigestEntry, ...]
    more_count: int = 0  # entries left out by the cap, shown online
    # With several subscriptions: the one that brought these entries (in the heading too).
    reason: str = ""


@dataclass(frozen=True)
class ReferenceList:
    """A reference list: focal points, a Sector's expert NGOs, or the NGO directory."""

    kind: str  # "focal_points", "expert_ngos" or "ngo_directory"
    heading: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    more_count: int = 0
    # Where the whole list is online (the directory page), when the email carries part of it.
    more_url: str | None = None


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


@dataclass(frozen=True)
class RenderedEdition:
    """One segment's edition, with placeholders where each recipient's values go."""

    subject: str
    html: str
    text: str
    mjml: str
    # Entries and reference rows left out of the HTML to stay under Gmail's clipping size
    # (the text part always carries everything).
    trimmed: int = 0


@dataclass(frozen=True, slots=True)
class Recipient:
    """One reader of a message: a subscriber being sent to, the reader of a preview, or the
    address of a test copy (id 0: no person has it, so its links lead nowhere real)."""

    id: int
    email: str
    name: str
    language: str

    @classmethod
    def of(cls, person: Any, language: str | None = None) -> "Recipient":
        """The recipient of a stored person (a row with id, email, name and language)."""
        if person.id is None:
            raise InvalidInput(f"subscriber {person.email} has no id: store it first")
        return cls(person.id, person.email, person.name, language or person.language)
