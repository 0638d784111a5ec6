"""Directories: NGOs, Field Offices, Sector focal points, forums and National Commissions,
imported from CSV or YAML."""

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import Session, SQLModel, select

from diffusion import validate
from diffusion.errors import InvalidInput
from diffusion.models import (
    SECTORS,
    FieldOffice,
    FocalPoint,
    Forum,
    NationalCommission,
    Organisation,
    Sector,
)
from diffusion.rows import Columns, CsvFile, ImportReport, neutralise_formula, yaml_rows
from diffusion.vocabulary import sector_name

KINDS = ("organisations", "field_offices", "focal_points", "forums", "national_commissions")
LIST_FIELDS = {"sectors", "themes", "countries"}


def _optional(row: Mapping[str, Any], name: str, check: Callable[[object], str]) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return check(value)


def _list(row: Mapping[str, Any], name: str, check: Callable[[object], str]) -> list[str]:
    return validate.unique(check(part) for part in validate.split_list(row.get(name)))


def _required(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    text = "" if value is None else str(value).strip()
    if not text:
        raise InvalidInput(f"{name}: missing")
    return text


def _day(row: Mapping[str, Any], name: str) -> date | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise InvalidInput(f"{name} {value!r}: expected a date as YYYY-MM-DD") from exc


def _organisation(row: Mapping[str, Any]) -> dict[str, Any]:
    status = (_optional(row, "partnership_status", str) or "consultative").lower()
    if status not in validate.PARTNERSHIP_STATUSES:
        raise InvalidInput(
            f"partnership_status {status!r}: expected one of "
            f"{', '.join(validate.PARTNERSHIP_STATUSES)}"
        )
    return {
        "slug": validate.slug(row.get("slug")),
        "name": _required(row, "name"),
        "acronym": _optional(row, "acronym", lambda v: str(v).strip()),
        "sectors": _list(row, "sectors", validate.sector),
        "themes": _list(row, "themes", validate.theme),
        "countries": _list(row, "countries", validate.country),
        "contact_email": _optional(row, "contact_email", validate.email),
        "website": _optional(row, "website", validate.website),
        "partnership_status": status,
    }


def _field_office(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "code": validate.slug(row.get("code")),
        "name": _required(row, "name"),
        "city": _required(row, "city"),
        "country": validate.country(row.get("country")),
        "countries": _list(row, "countries", validate.country),
        "email": _optional(row, "email", validate.email),
        "website": _optional(row, "website", validate.website),
    }


def _focal_point(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "sector_code": validate.sector(row.get("sector")),
        "name": _required(row, "name"),
        "email": validate.email(row.get("email")),
        "role": _optional(row, "role", lambda v: str(v).strip()),
    }


def _forum(row: Mapping[str, Any]) -> dict[str, Any]:
    starts, ends = _day(row, "starts_on"), _day(row, "ends_on")
    if starts and ends and ends < starts:
        raise InvalidInput(f"ends_on {ends} is before starts_on {starts}")
    return {
        "slug": validate.slug(row.get("slug")),
        "name": _required(row, "name"),
        "starts_on": starts,
        "ends_on": ends,
        "city": _optional(row, "city", lambda v: str(v).strip()),
        "themes": _list(row, "themes", validate.theme),
        "sectors": _list(row, "sectors", validate.sector),
        "countries": _list(row, "countries", validate.country),
        "website": _optional(row, "website", validate.website),
    }


def _national_commission(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "country": validate.country(row.get("country")),
        "name": _required(row, "name"),
        "contact_name": _optional(row, "contact_name", lambda v: str(v).strip()),
        "email": _optional(row, "email", validate.email),
        "website": _optional(row, "website", validate.website),
    }


@dataclass(frozen=True)
class _Kind:
    model: type[SQLModel]
    check: Callable[[Mapping[str, Any]], dict[str, Any]]
    key: tuple[str, ...]  # the fields an existing row is found by
    columns: tuple[str, ...]  # file columns, in export order
    required: tuple[str, ...]  # the columns a CSV file of this kind must have

    @property
    def file_columns(self) -> Columns:
        return Columns(self.required, tuple(c for c in self.columns if c not in self.required))


_KINDS: dict[str, _Kind] = {
    "organisations": _Kind(
        Organisation,
        _organisation,
        ("slug",),
        (
            "slug",
            "name",
            "acronym",
            "sectors",
            "themes",
            "countries",
            "contact_email",
            "website",
            "partnership_status",
        ),
        ("slug", "name"),
    ),
    "field_offices": _Kind(
        FieldOffice,
        _field_office,
        ("code",),
        ("code", "name", "city", "country", "countries", "email", "website"),
        ("code", "name", "city", "country"),
    ),
    "focal_points": _Kind(
        FocalPoint,
        _focal_point,
        ("sector_code", "email"),
        ("sector", "name", "email", "role"),
        ("sector", "name", "email"),
    ),
    "forums": _Kind(
        Forum,
        _forum,
        ("slug",),
        (
            "slug",
            "name",
            "starts_on",
            "ends_on",
            "city",
            "themes",
            "sectors",
            "countries",
            "website",
        ),
        ("slug", "name"),
    ),
    "national_commissions": _Kind(
        NationalCommission,
        _national_commission,
        ("country",),
        ("country", "name", "contact_name", "email", "website"),
        ("country", "name"),
    ),
}


def ensure_sectors(session: Session) -> None:
    """Seed the five programme Sectors from models.SECTORS; a no-op when they are there."""
    present = set(session.exec(select(Sector.code)).all())
    for code in SECTORS:
        if code not in present:
            name, name_fr = sector_name(code, "en"), sector_name(code, "fr")
            session.add(Sector(code=code, name=name, name_fr=name_fr))
    session.flush()


def detect_kind(columns: list[str]) -> str:
    """Which directory a CSV header describes."""
    names = set(columns)
    if "starts_on" in names or "ends_on" in names:
        return "forums"
    if "slug" in names:
        return "organisations"
    if "code" in names:
        return "field_offices"
    if "sector" in names and "email" in names:
        return "focal_points"
    if "country" in names and "city" not in names:
        return "national_commissions"
    raise InvalidInput(
        f"cannot tell the directory from the header {columns}; give --kind ({'|'.join(KINDS)})"
    )


def _check_kind(kind: str) -> str:
    if kind not in _KINDS:
        raise InvalidInput(f"directory kind {kind!r}: expected one of {', '.join(KINDS)}")
    return kind


def _csv_rows(
    path: Path, kind: str | None, report: ImportReport
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """The rows of a CSV file of one directory, its header read and checked at once."""
    file = CsvFile(path)
    name = _check_kind(kind) if kind else detect_kind(file.header)
    return ((name, line, row) for line, row in file.rows(_KINDS[name].file_columns, report))


def _existing(session: Session, spec: _Kind) -> dict[tuple[Any, ...], Any]:
    """The rows of one directory by key: one query per file rather than one per row."""
    return {
        tuple(getattr(row, field) for field in spec.key): row
        for row in session.exec(select(spec.model)).all()
    }


def _upsert(
    session: Session,
    spec: _Kind,
    values: dict[str, Any],
    existing: Any,
    now: datetime,
    report: ImportReport,
) -> Any:
    """Create or update one row; returns the row."""
    if existing is None:
        row = spec.model(**values)
        setattr(row, "updated_at", now)  # noqa: B010
        session.add(row)
        report.created += 1
        return row
    changed = {k: v for k, v in values.items() if getattr(existing, k) != v}
    if not changed:
        report.unchanged += 1
        return existing
    for field, value in changed.items():
        setattr(existing, field, value)
    setattr(existing, "updated_at", now)  # noqa: B010
    session.add(existing)
    report.updated += 1
    return existing


def import_directory(
    session: Session, path: Path, *, now: datetime, kind: str | None = None
) -> ImportReport:
    """Import a CSV (one directory) or YAML file (any of them); bad rows are reported, not fatal."""
    report = ImportReport(str(path))
    if path.suffix.lower() in (".yaml", ".yml"):
        sections = {name: spec.file_columns for name, spec in _KINDS.items()}
        rows = yaml_rows(path, sections, report, _check_kind(kind) if kind else None)
    else:
        rows = _csv_rows(path, kind, report)
    ensure_sectors(session)
    seen: dict[tuple[str, tuple[Any, ...]], int] = {}
    rows_by_kind: dict[str, dict[tuple[Any, ...], Any]] = {}
    for name, line, row in rows:
        spec = _KINDS[name]
        try:
            values = spec.check(row)
        except InvalidInput as exc:
            report.problem(line, str(exc))
            continue
        key = tuple(values[field] for field in spec.key)
        if (name, key) in seen:
            report.problem(line, f"duplicate of line {seen[name, key]} ({', '.join(spec.key)})")
            continue
        seen[name, key] = line
        if name not in rows_by_kind:
            rows_by_kind[name] = _existing(session, spec)
        existing = rows_by_kind[name]
        existing[key] = _upsert(session, spec, values, existing.get(key), now, report)
    session.flush()
    return report


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _records(session: Session, kind: str) -> list[dict[str, Any]]:
    spec = _KINDS[kind]
    order = [getattr(spec.model, field) for field in spec.key]
    records = []
    for row in session.exec(select(spec.model).order_by(*order)).all():
        record = {}
        for column in spec.columns:
            value = getattr(row, "sector_code" if column == "sector" else column)
            record[column] = value.isoformat() if isinstance(value, date) else value
        records.append(record)
    return records


def export_directory(session: Session, fmt: str = "yaml") -> str:
    """The directory as text that import_directory reads back: CSV (NGOs) or YAML (everything)."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=_KINDS["organisations"].columns, lineterminator="\n"
        )
        writer.writeheader()
        for record in _records(session, "organisations"):
            writer.writerow(
                {key: neutralise_formula(_cell(value)) for key, value in record.items()}
            )
        return out.getvalue()
    if fmt == "yaml":
        document = {kind: _records(session, kind) for kind in KINDS}
        return yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=100)
    raise InvalidInput(f"export format {fmt!r}: expected csv or yaml")
