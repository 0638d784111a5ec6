"""A small directory and a month of items where we know which item must reach which audience."""

import hashlib
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.models import SECTORS, FieldOffice, FocalPoint, Forum, Item, Organisation, Sector
from diffusion.select.directory import Directory
from diffusion.vocabulary import sector_name

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def organisations() -> list[Organisation]:
    return [
        Organisation(
            slug="ifla",
            name="International Federation of Library Associations",
            acronym="IFLA",
            sectors=["CI", "ED"],
            themes=["literacy"],
            countries=["BD", "KE"],
            contact_email="ifla@example.org",
            website="https://www.ifla.example",
        ),
        Organisation(
            slug="icsc",
            name="International Civil Society Centre",
            sectors=["SHS"],
            themes=["civic space"],
            countries=["DE", "KE"],
        ),
        Organisation(
            slug="ocean",
            name="Ocean Literacy Network",
            acronym="OLN",
            sectors=["SC"],
            countries=["FJ"],
        ),
    ]


def offices() -> list[FieldOffice]:
    return [
        FieldOffice(code="dhaka", name="UNESCO Dhaka Office", city="Dhaka", country="BD",
                    countries=["BD"]),
        FieldOffice(code="nairobi", name="UNESCO Nairobi Office", city="Nairobi", country="KE",
                    countries=["KE", "UG", "RW"]),
        FieldOffice(code="apia", name="UNESCO Apia Office", city="Apia", country="WS",
                    countries=["WS", "FJ"]),
    ]  # fmt: skip


def forums() -> list[Forum]:
    return [
        Forum(slug="icngo-2020", name="International Conference of NGOs 2020",
              starts_on=date(2020, 12, 14), sectors=["ED", "SHS"], themes=["youth"],
              countries=["FR"]),
        Forum(slug="medellin", name="4th International Conference on Learning Cities",
              sectors=[], themes=["ED"], countries=["CO"]),
    ]  # fmt: skip


def focal_points() -> list[FocalPoint]:
    return [
        FocalPoint(sector_code="SC", name="Carol Sc", email="c.sc@unesco.example"),
        FocalPoint(sector_code="ED", name="Alice Ed", email="a.ed@unesco.example", role="Lead"),
        FocalPoint(sector_code="CI", name="Bob Ci", email="b.ci@unesco.example"),
    ]


def directory() -> Directory:
    return Directory.of(organisations(), offices(), forums(), focal_points())


def _item(number: int, guid: str, kind: str, day: int, **fields: Any) -> Item:
    fields.setdefault("title", guid.replace("-", " ").capitalize())
    published = fields.pop("published_at", datetime(2026, 11, day, 12, 0, tzinfo=UTC))
    return Item(
        id=number,
        guid=guid,
        kind=kind,
        link=fields.pop("link", f"https://news.example/{guid}"),
        published_at=published,
        content_hash=hashlib.sha256(guid.encode()).hexdigest(),
        **fields,
    )


def items() -> list[Item]:
    """November 2026 (and one October item that no November digest may show)."""
    return [
        _item(1, "ifla-reading-bd", "ngo_action", 3, summary="Reading circles in Dhaka.",
              body_html="<p>Ten <strong>reading circles</strong> opened in Dhaka.</p>",
              tags={"organisations": ["ifla"], "sectors": ["CI"], "countries": ["BD"]},
              translations={"fr": {"title": "Cercles de lecture au Bangladesh",
                                   "summary": "Cercles de lecture à Dacca."}}),
        _item(2, "icsc-private-ke", "ngo_action", 4, public=False,
              tags={"organisations": ["icsc"], "sectors": ["SHS"], "countries": ["KE"]}),
        _item(3, "ocean-plan-fj", "ngo_plan", 5,
              tags={"organisations": ["ocean"], "sectors": ["SC"], "countries": ["FJ"],
                    "regions": ["Pacific"]}),
        _item(4, "dhaka-office-literacy", "field_office_activity", 6,
              tags={"field_offices": ["dhaka"], "sectors": ["ED"]}),
        _item(5, "apia-office-literacy", "field_office_activity", 7,
              tags={"field_offices": ["apia"], "themes": ["literacy"]}),
        _item(6, "ed-programme-nairobi", "programme_update", 8,
              tags={"sectors": ["ED"], "field_offices": ["nairobi"], "regions": ["Africa"]}),
        _item(7, "icngo-conclusions", "forum_conclusion", 9, tags={"forums": ["icngo-2020"]}),
        _item(8, "medellin-private", "forum_conclusion", 10, public=False,
              tags={"forums": ["medellin"], "countries": ["CO"]}),
        _item(9, "world-book-day", "event", 11, tags={"themes": ["literacy"]}),
        _item(10, "october-action", "ngo_action", 1,
              published_at=datetime(2026, 10, 15, 12, 0, tzinfo=UTC),
              tags={"organisations": ["ifla"], "sectors": ["CI"], "countries": ["BD"]}),
        _item(11, "action-en-francais", "ngo_action", 12, language="fr",
              title="Action en français", tags={"sectors": ["CI"], "countries": ["SN"]}),
    ]  # fmt: skip


def store(engine: Engine, extra_items: list[Item] | None = None) -> None:
    """Write the directory and the items to the database."""
    with db.session_scope(engine) as session:
        for code in SECTORS:
            session.add(
                Sector(code=code, name=sector_name(code, "en"), name_fr=sector_name(code, "fr"))
            )
        session.flush()
        session.add_all([*organisations(), *offices(), *forums(), *focal_points()])
        # The database numbers the items itself (explicit ids would not move PostgreSQL's sequence).
        stored = [*items(), *(extra_items or [])]
        for item in stored:
            item.id = None
        session.add_all(stored)
