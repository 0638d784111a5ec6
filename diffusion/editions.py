"""Editions: one digest per segment and period, built, rendered once and stored (job level)."""

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from diffusion import db, render, subscriptions
from diffusion.config import Settings
from diffusion.contracts import Digest, Period, Segment
from diffusion.errors import UnknownAudience, UnknownRecord
from diffusion.links import archive_url
from diffusion.models import Edition, Item
from diffusion.select.digest import build_digest
from diffusion.select.directory import Directory, check_key, read_directory
from diffusion.select.matchers import RoutingIndex
from diffusion.select.periods import (
    REBUILDABLE,
    LateItems,
    cadence_of,
    items_window,
    late_items,
    load_items,
    more_url_for,
    period_of,
    with_late,
)
from diffusion.select.rules import RoutingRules, parse_audience


@dataclass(frozen=True)
class BuildResult:
    """What `build_editions` did for one segment."""

    segment: str
    audience: str
    key: str
    language: str
    period: str
    edition_id: int | None
    item_count: int
    more_count: int
    status: str  # the edition's status: draft, approved, empty, or as found when kept
    action: str  # created, rebuilt, or kept (existed and was not a draft)
    subscribers: int
    # Set when the segment needs someone's attention, e.g. its audience key no longer exists.
    warning: str | None = None


def digest_for(
    engine: Engine,
    settings: Settings,
    *,
    rules: RoutingRules,
    audience: str,
    key: str,
    language: str,
    period: str | None,
    now: datetime,
    subscriber_email: str | None = None,
) -> Digest:
    """The digest an audience key (or one subscriber's segment) would get; nothing is stored."""
    with db.session_scope(engine) as session:
        directory = read_directory(session)
        if subscriber_email:
            segment = _person_segment(session, subscriber_email, period)
        else:
            rules.audience(audience)
            segment = Segment(
                audience=audience,
                key=check_key(rules, audience, key, directory),
                language=language,
                cadence=cadence_of(period) if period else "monthly",
            )
        base = period_of(period, segment, settings, now)
        window = items_window(session, segment, base, explicit=period is not None)
        late = late_items(session, segment, base, settings)
        start = min(window.start, late.published_from) if late else window.start
        window, items = with_late(window, late, load_items(session, start, window.end))
    return build_digest(
        items,
        directory,
        rules,
        segment=segment,
        period=window,
        now=now,
        max_items=settings.digest_max_items,
        more_url=more_url_for(settings, rules, segment),
    )


def _person_segment(session: Session, email: str, period: str | None) -> Segment:
    """The segment of a person's active subscriptions of the period's cadence."""
    person = subscriptions.find_person(session, email)
    if person is None:
        raise UnknownRecord(f"no subscriber {email!r}; check the address")
    cadence = cadence_of(period) if period else None
    found = [
        segment
        for person_id, segment in subscriptions.people_segments(session, cadence=cadence)
        if person_id == person.id
    ]
    if not found:
        raise UnknownRecord(
            f"{email} is {person.status} and has no active subscription"
            + (f" of the {cadence} cadence" if cadence else "")
        )
    return found[0]


def _segments(
    session: Session, rules: RoutingRules, directory: Directory, audience: str | None
) -> dict[Segment, int]:
    """The segments of active people: each person's active subscriptions of one cadence
    (optionally only segments holding one audience or audience key)."""
    wanted: tuple[str, str | None] | None = None
    if audience:
        name, key = parse_audience(audience)
        rules.audience(name)
        wanted = (name, check_key(rules, name, key, directory) if key is not None else None)
    counts: dict[Segment, int] = defaultdict(int)
    for _person_id, segment in subscriptions.people_segments(session):
        if wanted is not None and not any(
            part.audience == wanted[0] and wanted[1] in (None, part.key) for part in segment.parts
        ):
            continue
        counts[segment] += 1
    return counts


def build_editions(
    engine: Engine,
    settings: Settings,
    *,
    rules: RoutingRules,
    now: datetime,
    period: str | None = None,
    audience: str | None = None,
) -> list[BuildResult]:
    """Build, render and store one edition per segment of active subscribers and period.

    Safe to run twice at once: the (segment, period) unique constraint decides which insert
    wins, the other process keeps the winner's edition. Approved or sent editions are kept.
    A segment whose audience key is no longer valid (e.g. an NGO removed from the directory)
    is still built, with a `warning` in its result.
    Raises TemplateError (template and line) before any work when an email template is broken.
    """
    render.check_templates(settings)
    if period is not None:
        Period.parse(period, settings.zone)  # a malformed label fails before any work
    plans: list[_Plan] = []
    with db.session_scope(engine) as session:
        directory = read_directory(session)
        segments = _segments(session, rules, directory, audience)
        for segment in sorted(segments, key=lambda found: found.id):
            if period is not None and segment.cadence != cadence_of(period):
                continue  # a month is built for monthly segments, a week for weekly ones
            base = period_of(period, segment, settings, now)
            existing = _existing(session, segment.id, base.label)
            window = items_window(session, segment, base, explicit=period is not None)
            plans.append(
                _Plan(
                    segment,
                    segments[segment],
                    base,
                    existing,
                    window,
                    _key_warning(rules, directory, segment, segments[segment]),
                    late_items(session, segment, base, settings),
                )
            )
        to_build = [plan for plan in plans if not plan.kept]
        # Items are read once for every segment; each digest keeps those of its own window.
        items = (
            load_items(
                session,
                min(plan.earliest for plan in to_build),
                max(plan.window.end for plan in to_build),
            )
            if to_build
            else []
        )
    index = RoutingIndex(items)
    results = []
    for plan in plans:
        if plan.kept:
            assert plan.existing is not None
            result = _result(plan.segment, plan.existing, "kept", plan.subscribers, 0)
        else:
            result = _build_one(engine, settings, rules, directory, plan, index, items, now)
        results.append(dataclasses.replace(result, warning=plan.warning))
    return results


def _key_warning(
    rules: RoutingRules, directory: Directory, segment: Segment, subscribers: int
) -> str | None:
    """Why a segment's audience key is no longer valid, for whoever runs the build."""
    try:
        for part in segment.parts:
            check_key(rules, part.audience, part.key, directory)
    except UnknownAudience as exc:
        return (
            f"{segment.id}: {exc}; its {subscribers} active subscriber(s) get nothing addressed "
            "to them. Restore the key with `diffusion directory import`, or remove them "
            f"(`diffusion subscribers list --audience {segment.audience}` shows them)"
        )
    return None


@dataclass(frozen=True)
class _Plan:
    """One segment to build: its period, the edition it may already have, its items' window."""

    segment: Segment
    subscribers: int
    base: Period
    existing: Edition | None
    window: Period
    warning: str | None = None
    late: LateItems | None = None

    @property
    def earliest(self) -> datetime:
        """The earliest publication any of its items may have."""
        return min(self.window.start, self.late.published_from) if self.late else self.window.start

    @property
    def kept(self) -> bool:
        return self.existing is not None and self.existing.status not in REBUILDABLE


def _build_one(
    engine: Engine,
    settings: Settings,
    rules: RoutingRules,
    directory: Directory,
    plan: _Plan,
    index: RoutingIndex,
    items: Sequence[Item],
    now: datetime,
) -> BuildResult:
    segment, base, existing = plan.segment, plan.base, plan.existing
    window, candidates = with_late(plan.window, plan.late, items)
    digest = build_digest(
        candidates,
        directory,
        rules,
        segment=segment,
        period=window,
        now=now,
        max_items=settings.digest_max_items,
        more_url=more_url_for(settings, rules, segment),
        index=index,
    )
    values = _edition_values(digest, now)
    # One transaction: claim the row (its id is the web version's address), render, store. A
    # concurrent build of the same segment waits on the claim, then finds it taken, and nobody
    # ever sees a claimed edition without its content.
    with db.session_scope(engine) as session:
        if existing is not None:
            edition_id = existing.id
        else:
            claim = db.insert_or_ignore(session, Edition, ["segment", "period"]).values(**values)
            inserted = session.execute(claim.returning(col(Edition.id))).first()
            edition_id = inserted[0] if inserted is not None else None
        if edition_id is None:
            action = "kept"
        else:
            content = _content(digest, settings, archive_url(settings, edition_id), now)
            # Only a draft or empty edition is replaced, even if an editor approved it meanwhile.
            updated = session.execute(
                sa.update(Edition)
                .where(col(Edition.id) == edition_id, col(Edition.status).in_(REBUILDABLE))
                .values({**values, **content})
            )
            stored_now = cast(sa.CursorResult[Any], updated).rowcount
            action = ("rebuilt" if existing is not None else "created") if stored_now else "kept"
    with db.session_scope(engine) as session:
        stored = _existing(session, segment.id, base.label)
    if stored is None:
        raise UnknownRecord(f"edition {segment.id} {base.label} vanished while being built")
    return _result(segment, stored, action, plan.subscribers, digest.more_count)


def _existing(session: Session, segment_id: str, label: str) -> Edition | None:
    return session.exec(
        select(Edition).where(Edition.segment == segment_id, Edition.period == label)
    ).first()


def _edition_values(digest: Digest, now: datetime) -> dict[str, object]:
    """The columns that name an edition; an edition is claimed with them, content empty."""
    segment = digest.segment
    return {
        "segment": segment.id,
        "audience": segment.audience,
        "key": segment.key,
        "language": segment.language,
        "cadence": segment.cadence,
        "period": digest.period.label,
        "subject": digest.title,
        "html": "",
        "text": "",
        "item_count": digest.item_count,
        "status": "empty",  # until the content is stored, in the same transaction
        "created_at": now,
        "approved_at": None,
    }


def _content(digest: Digest, settings: Settings, web_url: str, now: datetime) -> dict[str, object]:
    """The rendered edition and its status: empty (reported, not sent), draft or approved."""
    values: dict[str, object] = {}
    if digest.is_empty:
        values["status"] = "empty"
        return values
    rendered = render.render_digest(digest, settings, web_url=web_url)
    values.update(subject=rendered.subject, html=rendered.html, text=rendered.text)
    if settings.require_approval:
        values["status"] = "draft"
    else:
        values.update(status="approved", approved_at=now)
    return values


def _result(
    segment: Segment, edition: Edition, action: str, subscribers: int, more_count: int
) -> BuildResult:
    return BuildResult(
        segment=segment.id,
        audience=segment.audience,
        key=segment.key,
        language=segment.language,
        period=edition.period,
        edition_id=edition.id,
        item_count=edition.item_count,
        more_count=more_count,
        status=edition.status,
        action=action,
        subscribers=subscribers,
    )
