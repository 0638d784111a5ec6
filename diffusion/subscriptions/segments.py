"""The segments of the people to mail: each active person with their active subscriptions."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session

from diffusion.contracts import Segment
from diffusion.models import Person, Subscription

from .states import NARROWING


def people_segments(
    session: Session,
    *,
    language: str | None = None,
    cadence: str | None = None,
    holding: tuple[str, str] | None = None,
    batch_size: int = 5000,
) -> Iterator[tuple[int, Segment]]:
    """(person id, segment) for each active person and cadence of their active subscriptions.

    `holding` (audience, key) reads only the people with that active subscription: an edition's
    readers are found among those of its first subscription, not among everyone. Read in pages
    of people by id, as plain rows; the narrowing lists come as JSON text and a combination of
    subscriptions is made into a segment once, not once per person.
    """
    table = cast(sa.Table, Subscription.__table__)  # type: ignore[attr-defined]
    people = cast(sa.Table, Person.__table__)  # type: ignore[attr-defined]
    lists = [sa.cast(table.c[name], sa.Text) for name in NARROWING]
    made: dict[tuple[Any, ...], Segment] = {}
    last = 0
    while True:
        conditions = [people.c.status == "active", people.c.id > last]
        if language is not None:
            conditions.append(people.c.language == language)
        if holding is not None:
            conditions.append(
                people.c.id.in_(
                    sa.select(table.c.person_id).where(
                        table.c.audience == holding[0],
                        table.c.key == holding[1],
                        table.c.status == "active",
                    )
                )
            )
        ids = list(
            session.execute(
                sa.select(people.c.id).where(*conditions).order_by(people.c.id).limit(batch_size)
            ).scalars()
        )
        if not ids:
            return
        query = (
            sa.select(
                table.c.person_id,
                people.c.language,
                table.c.cadence,
                table.c.audience,
                table.c.key,
                *lists,
            )
            .join(people, people.c.id == table.c.person_id)
            .where(table.c.person_id.in_(ids), table.c.status == "active")
            .order_by(table.c.person_id, table.c.cadence, table.c.id)
        )
        if cadence is not None:
            query = query.where(table.c.cadence == cadence)
        rows = session.execute(query).all()
        for (person_id, person_language, person_cadence), group in groupby(
            rows, key=lambda row: (row[0], row[1], row[2])
        ):
            combination = (person_language, person_cadence, *(tuple(row[3:]) for row in group))
            segment = made.get(combination)
            if segment is None:
                segment = made[combination] = Segment.of_person(
                    person_language,
                    [
                        _Part(audience, key, person_cadence, *map(_decoded, narrowing))
                        for audience, key, *narrowing in combination[2:]
                    ],
                )
            yield person_id, segment
        last = ids[-1]


@dataclass(frozen=True)
class _Part:
    """What Segment.of_person reads of a subscription."""

    audience: str
    key: str
    cadence: str
    sectors: list[str]
    themes: list[str]
    regions: list[str]


def _decoded(text: str | None) -> list[str]:
    value = json.loads(text or "[]")
    return [str(v) for v in value] if isinstance(value, list) else []
