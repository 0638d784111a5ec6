"""The sources collected from: added one by one or imported from CSV, updated in place."""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from diffusion import validate
from diffusion.collect.items import check_tags
from diffusion.collect.sanitize import clean_text
from diffusion.errors import InvalidInput
from diffusion.models import TAG_KEYS, Source
from diffusion.rows import Columns, ImportReport, csv_rows


def list_sources(session: Session) -> list[Source]:
    """Every feed source by name, with the outcome of its last collection."""
    return list(session.exec(select(Source).order_by(col(Source.name))).all())


def save_source(
    session: Session,
    *,
    name: str,
    url: str,
    kind: str,
    language: str | None = None,
    public: bool = True,
    tags: Mapping[str, list[str]] | None = None,
) -> tuple[Source, str]:
    """Add a source, or update the one with this name (else this URL).

    Returns the row and what happened: "created", "updated" or "unchanged".
    """
    row = session.exec(select(Source).where(Source.name == name)).first()
    row = row or session.exec(select(Source).where(Source.url == url)).first()
    wanted = (name, url, kind, language, public, dict(tags or {}))
    if row is None:
        row = Source(name=name, url=url, kind=kind)
        state = "created"
    elif (row.name, row.url, row.kind, row.language, row.public, row.tags) == wanted:
        return row, "unchanged"
    else:
        state = "updated"
        if row.url != url:  # a new address: the validators belonged to the old one
            row.etag = row.last_modified = None
    row.name, row.url, row.kind, row.language, row.public, row.tags = wanted
    session.add(row)
    session.flush()
    return row, state


def check_url(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "file") or not (parts.netloc or parts.path):
        raise InvalidInput(f"url: {value!r} is not an http://, https:// or file:// address")
    return url


def source_name(url: str) -> str:
    """A default name for a source: its host and path as a slug."""
    parts = urlsplit(url)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{parts.netloc}{parts.path}".lower()).strip("-")
    return slug[:80] or "source"


_BOOLEANS = {
    "": True,
    "true": True,
    "yes": True,
    "1": True,
    "false": False,
    "no": False,
    "0": False,
}
SOURCE_COLUMNS = Columns(("name", "url", "kind"), ("language", "public", *TAG_KEYS))


def import_sources(session: Session, path: Path) -> ImportReport:
    """Import sources from CSV (name,url,kind + optional language, public and tag columns).

    Tag columns hold values separated by `;` or `,`. Bad rows are reported as FILE:LINE: reason
    and skipped; re-importing updates sources in place, matched by name, else by URL.
    """
    report = ImportReport(str(path))
    seen: dict[str, int] = {}
    for line, row in csv_rows(path, SOURCE_COLUMNS, report):
        try:
            fields = _source_fields(row)
        except InvalidInput as exc:
            report.problem(line, str(exc))
            continue
        if fields["name"] in seen:
            report.problem(line, f"name {fields['name']!r} already on line {seen[fields['name']]}")
            continue
        seen[fields["name"]] = line
        _, state = save_source(session, **fields)
        report.count(state)
    return report


def _source_fields(row: Mapping[str, str]) -> dict[str, Any]:
    if not row.get("name"):
        raise InvalidInput("name: missing")
    public = row.get("public", "").lower()
    if public not in _BOOLEANS:
        raise InvalidInput(f"public: {row['public']!r} is not true or false")
    tags = check_tags({key: row[key] for key in TAG_KEYS if row.get(key)})
    return {
        "name": clean_text(row["name"]),
        "url": check_url(row.get("url", "")),
        "kind": validate.kind(row.get("kind"), field="kind"),
        "language": validate.language(row["language"], field="language")
        if row.get("language")
        else None,
        "public": _BOOLEANS[public],
        "tags": tags,
    }
