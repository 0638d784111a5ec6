"""Storing collected items: new rows inserted, known ones updated, never duplicated; finding."""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col, select

from diffusion import validate
from diffusion.collect.sanitize import clean_text
from diffusion.errors import InvalidInput
from diffusion.models import TAG_KEYS, Item

# What a re-collected entry may change; identity (guid, source, origin) and first sighting stay.
_UPDATABLE = (
    "kind",
    "link",
    "title",
    "summary",
    "body_html",
    "language",
    "translations",
    "tags",
    "public",
    "published_at",
    "content_hash",
)
_COLUMNS = [name for name in Item.__table__.columns.keys() if name != "id"]  # type: ignore[attr-defined]
_CHUNK = 500


def upsert_items(
    session: Session, items: Iterable[Item | Mapping[str, Any]], *, now: datetime
) -> tuple[int, int]:
    """Insert new items and update changed ones; returns (created, updated).

    `items` are unsaved Item rows, or mappings of every Item column but `id` (as
    feeds.parse_feed gives them). An item is the same as a stored one if it has the same guid;
    failing that, the same link from the same source (some sites change guids on every build);
    failing that, the same content hash from the same source. Rows already matched in this
    batch are not matched twice, so distinct entries sharing a link are kept apart. New rows
    are inserted in one statement: the given Item objects stay detached from the session.
    """
    batch: dict[str, dict[str, Any]] = {}
    for item in items:
        values = dict(item) if isinstance(item, Mapping) else _values(item)
        values.pop("id", None)  # the database numbers new rows
        batch.setdefault(values["guid"], values)  # duplicate guids in one batch: the first wins
    if not batch:
        return 0, 0
    candidates = _candidates(session, list(batch.values()))
    by_guid = {row.guid: row for row in candidates}
    by_link = _index(candidates, "link")
    by_hash = _index(candidates, "content_hash")
    # Rows that some item of the batch has by guid are spoken for: no other item takes them.
    touched = {id(by_guid[guid]) for guid in batch if guid in by_guid}
    new_rows: list[dict[str, Any]] = []
    updated = 0
    for guid, values in batch.items():
        owner = (values["source_id"], values["origin"])
        row = by_guid.get(guid)
        if row is None and values["link"]:
            row = _untouched(by_link.get((*owner, values["link"]), []), touched)
        if row is None:
            row = _untouched(by_hash.get((*owner, values["content_hash"]), []), touched)
        if row is None:
            new_rows.append(values | {"collected_at": now})
            continue
        touched.add(id(row))
        if values["published_at"] == values["collected_at"]:
            # An undated entry is dated when first seen (see feeds.parse_feed); keep that date.
            values["published_at"] = row.published_at
        changed = False
        for name in _UPDATABLE:
            if getattr(row, name) != values[name]:
                setattr(row, name, values[name])
                changed = True
        updated += changed
    if new_rows:
        # One executemany instead of the ORM's row-by-row unit of work: collection inserts
        # thousands of rows and needs none of their ids back.
        session.execute(sa.insert(Item), new_rows)
    session.flush()
    return len(new_rows), updated


def _values(item: Item) -> dict[str, Any]:
    return {name: getattr(item, name) for name in _COLUMNS}


def _candidates(session: Session, items: list[dict[str, Any]]) -> list[Item]:
    """Stored rows sharing a guid, link or content hash with the batch, in one query a chunk."""
    rows: dict[int | None, Item] = {}
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        links = sorted({item["link"] for item in chunk if item["link"]})
        condition = sa.or_(
            col(Item.guid).in_(sorted({item["guid"] for item in chunk})),
            col(Item.content_hash).in_(sorted({item["content_hash"] for item in chunk})),
            *([col(Item.link).in_(links)] if links else []),
        )
        rows.update((row.id, row) for row in session.exec(select(Item).where(condition)))
    return list(rows.values())


def _index(rows: list[Item], attribute: str) -> dict[tuple[Any, str, Any], list[Item]]:
    index: dict[tuple[Any, str, Any], list[Item]] = {}
    for row in rows:
        index.setdefault((row.source_id, row.origin, getattr(row, attribute)), []).append(row)
    return index


def _untouched(rows: list[Item], touched: set[int]) -> Item | None:
    return next((row for row in rows if id(row) not in touched), None)


def find_items(
    session: Session,
    *,
    kind: str | None = None,
    sector: str | None = None,
    country: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[Item]:
    """Stored items, newest first, narrowed by kind, Sector, country and publication time."""
    query = select(Item).where(*_item_filters(session, kind, sector, country, since))
    query = query.order_by(col(Item.published_at).desc(), col(Item.id).desc()).limit(limit)
    return list(session.exec(query).all())


def count_items(
    session: Session,
    *,
    kind: str | None = None,
    sector: str | None = None,
    country: str | None = None,
    since: datetime | None = None,
) -> int:
    """How many items find_items would give without a limit."""
    filters = _item_filters(session, kind, sector, country, since)
    query = select(sa.func.count()).select_from(Item).where(*filters)
    return int(session.exec(query).one())


def _item_filters(
    session: Session,
    kind: str | None,
    sector: str | None,
    country: str | None,
    since: datetime | None,
) -> list[sa.ColumnElement[bool]]:
    filters: list[sa.ColumnElement[bool]] = []
    if kind:
        filters.append(col(Item.kind) == kind)
    if since:
        filters.append(col(Item.published_at) >= since)
    if sector:
        filters.append(tagged(session, "sectors", sector.upper()))
    if country:
        filters.append(tagged(session, "countries", country.upper()))
    return filters


def tagged(session: Session, key: str, value: str) -> sa.ColumnElement[bool]:
    """Items whose tags[key] holds `value`, tested in SQL on PostgreSQL and on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(col(Item.tags), postgresql.JSONB)[key].contains([value])
    values = sa.func.json_each(col(Item.tags), f"$.{key}").table_valued("value")
    return sa.exists(sa.select(1).select_from(values).where(values.c.value == value))


def check_tags(raw: Mapping[str, Any]) -> dict[str, list[str]]:
    """Tags keyed by TAG_KEYS: Sectors, countries and SDGs checked by diffusion.validate.

    Each value may be a list or a `;`/`,`-separated string; repeats are dropped. Other tags
    (themes, organisations...) are kept as plain one-line text.
    """
    tags: dict[str, list[str]] = {}
    for key, value in raw.items():
        if key not in TAG_KEYS:
            raise InvalidInput(f"{key}: unknown tag key; use one of {', '.join(TAG_KEYS)}")
        check = _TAG_CHECKS.get(key)
        given = validate.split_list(value)
        values = [check(v, field=key) if check else clean_text(v) for v in given]
        values = validate.unique(v for v in values if v)
        if values:
            tags[key] = values
    return tags


_TAG_CHECKS: dict[str, Callable[..., str]] = {
    "sectors": validate.sector,
    "countries": validate.country,
    "sdgs": validate.sdg,
}
