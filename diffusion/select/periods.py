"""Periods: the month or week an edition covers, and the window of items it holds."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from diffusion.config import Settings
from diffusion.contracts import Period, Segment
from diffusion.links import news_url
from diffusion.models import Edition, Item
from diffusion.select.rules import RoutingRules, feed_path

# Editions in these states may be built again; the others are approved or on their way out.
REBUILDABLE = ("draft", "empty")


def load_items(session: Session, start: datetime, end: datetime) -> list[Item]:
    """Items published in [start, end)."""
    query = select(Item).where(col(Item.published_at) >= start, col(Item.published_at) < end)
    return list(session.exec(query.order_by(col(Item.published_at), col(Item.id))).all())


def more_url_for(settings: Settings, rules: RoutingRules, segment: Segment) -> str | None:
    """Where the rest of a capped digest is online: the HTML page of the segment's public feed,
    in the reader's language (a browser shows a feed file as raw XML). For a person's several
    subscriptions, the first (most private) one with a feed family of its own; else the public one.
    """
    families = [family.audiences for family in rules.feeds.values()]
    part = next(
        (part for part in segment.parts if any(part.audience in names for names in families)),
        segment,
    )
    path = feed_path(rules, part.audience, part.key, segment.language, "atom")
    if not path:
        return None
    family, _, key = path.rsplit(".", 2)[0].partition("/")
    return news_url(settings, family, key, segment.language)


def default_period(now: datetime, cadence: str, settings: Settings) -> Period:
    """The period built when none is named: the last complete month or ISO week before `now`,
    which is what the monthly and weekly jobs of the scheduler send (never the unfinished one)."""
    if cadence == "weekly":
        return Period.containing(now - timedelta(days=7), "weekly", settings.zone)
    first = now.astimezone(settings.zone).replace(day=1)
    return Period.containing(first - timedelta(days=1), "monthly", settings.zone)


def default_periods_said(now: datetime, settings: Settings) -> str:
    """One line telling an editor which periods were chosen for them."""
    month = default_period(now, "monthly", settings).label
    week = default_period(now, "weekly", settings).label
    return (
        f"No --period given: the past month, {month}, for monthly newsletters and the past "
        f"week, {week}, for weekly digests (what the scheduler sends next)."
    )


def period_of(label: str | None, segment: Segment, settings: Settings, now: datetime) -> Period:
    if label is None:
        return default_period(now, segment.cadence, settings)
    return Period.parse(label, settings.zone)


def items_window(session: Session, segment: Segment, period: Period, explicit: bool) -> Period:
    """The items' window: the period asked for, or since the segment's previous edition."""
    if explicit:
        return period
    previous = session.exec(
        select(Edition)
        .where(Edition.segment == segment.id, Edition.period != period.label)
        .where(col(Edition.status).not_in(REBUILDABLE))
        .order_by(col(Edition.created_at).desc())
        .limit(1)
    ).first()
    if previous is None or previous.created_at >= period.end:
        return period
    # Since the previous edition: nothing published between two editions is lost.
    return Period(period.label, min(previous.created_at, period.start), period.end)


@dataclass(frozen=True)
class LateItems:
    """Items that missed the segment's previous edition: published in its period or since,
    collected after it was built."""

    published_from: datetime  # the previous edition's period start
    collected_after: datetime  # when the previous edition was built

    def takes(self, item: Item, window: Period) -> bool:
        if window.start <= item.published_at < window.end:
            return True
        return self.published_from <= item.published_at < window.start and _utc(
            item.collected_at
        ) > _utc(self.collected_after)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def late_items(
    session: Session, segment: Segment, period: Period, settings: Settings
) -> LateItems | None:
    """What the segment's last edition before this period missed, if it has one."""
    previous = session.exec(
        select(Edition)
        .where(Edition.segment == segment.id, Edition.period != period.label)
        .where(col(Edition.status).not_in(REBUILDABLE))
        .order_by(col(Edition.created_at).desc())
        .limit(1)
    ).first()
    if previous is None:
        return None
    start = Period.parse(previous.period, settings.zone).start
    if start >= period.start:
        return None  # a later period's edition: not the one this period follows
    return LateItems(start, previous.created_at)


def with_late(
    window: Period, late: LateItems | None, items: Sequence[Item]
) -> tuple[Period, list[Item]]:
    """The digest's window and items: its own, and those the previous edition missed."""
    if late is None:
        return window, list(items)
    wider = Period(window.label, min(window.start, late.published_from), window.end)
    return wider, [item for item in items if late.takes(item, window)]


def cadence_of(label: str) -> str:
    return "weekly" if "-W" in label else "monthly"
