"""The directory as routing sees it: a snapshot read once, and the check of an audience key."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlmodel import Session, select

from diffusion import validate
from diffusion.errors import InvalidInput, UnknownAudience
from diffusion.models import (
    SECTORS,
    FieldOffice,
    FocalPoint,
    Forum,
    NationalCommission,
    Organisation,
)
from diffusion.select.rules import RoutingRules


@dataclass(frozen=True)
class Directory:
    """A snapshot of the directory the routing looks at: NGOs, offices, forums, focal points."""

    organisations: Mapping[str, Organisation] = field(default_factory=dict)
    offices: Mapping[str, FieldOffice] = field(default_factory=dict)
    forums: Mapping[str, Forum] = field(default_factory=dict)
    focal_points: Sequence[FocalPoint] = ()
    national_commissions: Mapping[str, NationalCommission] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        organisations: Iterable[Organisation] = (),
        offices: Iterable[FieldOffice] = (),
        forums: Iterable[Forum] = (),
        focal_points: Iterable[FocalPoint] = (),
        national_commissions: Iterable[NationalCommission] = (),
    ) -> "Directory":
        return cls(
            organisations={org.slug: org for org in organisations},
            offices={office.code: office for office in offices},
            forums={forum.slug: forum for forum in forums},
            focal_points=tuple(focal_points),
            national_commissions={nc.country.upper(): nc for nc in national_commissions},
        )

    def countries(self) -> set[str]:
        """Every country an NGO works in or an office covers."""
        found: set[str] = set()
        for org in self.organisations.values():
            found.update(org.countries)
        for office in self.offices.values():
            found.update(office.countries)
            found.add(office.country)
        return {code.upper() for code in found}


def check_key(rules: RoutingRules, audience: str, key: str, directory: Directory) -> str:
    """The key in its canonical spelling, or UnknownAudience naming it and what exists."""
    spec = rules.audience(audience)
    return _check_key_type(spec.key_type, audience, key, directory)


def _check_key_type(key_type: str, audience: str, key: str, directory: Directory) -> str:
    def unknown(what: str, known: Iterable[str], hint: str = "") -> UnknownAudience:
        listed = ", ".join(sorted(known)) or "none yet (import the directory first)"
        return UnknownAudience(f"{audience}: unknown {what} {key!r}; known: {listed}{hint}")

    key = key.strip()
    if key_type == "none":
        if key:
            raise UnknownAudience(f"key {key!r}: audience {audience} takes no key; leave it empty")
        return ""
    if not key:
        raise UnknownAudience(
            f"key: missing; audience {audience} needs one (every {audience} subscription "
            f"needs a key naming a {key_type.replace('_', ' ')}, e.g. {audience}:KEY)"
        )
    if key_type == "sector":
        try:
            return validate.sector(key)
        except InvalidInput:
            raise unknown("Sector", SECTORS) from None
    if key_type == "country":
        try:
            return validate.country(key)
        except InvalidInput:
            raise UnknownAudience(
                f"country {key!r}: unknown country {key!r} for audience {audience}; "
                "give an ISO 3166-1 alpha-2 code such as BD"
            ) from None
    new_row = "; import the directory first (diffusion directory import) if it is new"
    if key_type == "field_office":
        found = _canonical(key, directory.offices)
        if found is None:
            hint = f"; there is no Field Office with this code in the directory{new_row}"
            raise unknown("Field Office", directory.offices, hint)
        return found
    found = _canonical(key, directory.organisations)
    if found is None:
        hint = f"; there is no organisation with this slug in the directory{new_row}"
        raise unknown("organisation", directory.organisations, hint)
    return found


def _canonical(key: str, known: Mapping[str, object]) -> str | None:
    """The known spelling of a slug or office code, whatever the case it was given in."""
    if key in known:
        return key
    folded = key.casefold()
    return next((name for name in known if name.casefold() == folded), None)


def read_directory(session: Session) -> Directory:
    """The directory as plain rows, read once per job or import."""
    return Directory.of(
        organisations=session.exec(select(Organisation)).all(),
        offices=session.exec(select(FieldOffice)).all(),
        forums=session.exec(select(Forum)).all(),
        focal_points=session.exec(select(FocalPoint)).all(),
        national_commissions=session.exec(select(NationalCommission)).all(),
    )
