"""Finding people and subscriptions, and listing them."""

from sqlmodel import Session, col, select

from diffusion import validate
from diffusion.errors import InvalidInput
from diffusion.models import Person, Subscription


def normalise_address(email: str) -> str:
    """The address as stored; one that no longer validates is looked up lower-cased as given."""
    try:
        return validate.subscriber_email(email)
    except InvalidInput:
        return email.strip().lower()


def find_person(session: Session, email: str) -> Person | None:
    """The person with this address, whatever its capitals; None if there is none."""
    address = normalise_address(email)
    return session.exec(select(Person).where(Person.email == address)).first()


def subscriptions_of(session: Session, person: Person) -> list[Subscription]:
    """The person's subscriptions, oldest first (left ones included)."""
    return list(
        session.exec(
            select(Subscription)
            .where(Subscription.person_id == person.id)
            .order_by(col(Subscription.id))
        ).all()
    )


def subscription_to(
    session: Session, person: Person, audience: str, audience_key: str
) -> Subscription | None:
    if person.id is None:
        return None
    return session.exec(
        select(Subscription).where(
            Subscription.person_id == person.id,
            Subscription.audience == audience,
            Subscription.key == audience_key,
        )
    ).first()


def effective_status(person: Person, subscription: Subscription) -> str:
    """What a subscription amounts to: its person's status unless that is active."""
    return subscription.status if person.status == "active" else person.status


def listing(
    session: Session, *, audience: str | None = None, status: str | None = None
) -> list[tuple[Person, Subscription]]:
    """One (person, subscription) per subscription, by audience, key and address; `status`
    filters on the effective status."""
    query = select(Person, Subscription).join(
        Subscription, col(Subscription.person_id) == col(Person.id)
    )
    if audience:
        query = query.where(Subscription.audience == validate.audience(audience))
    order = (col(Subscription.audience), col(Subscription.key), col(Person.email))
    rows = [(person, sub) for person, sub in session.exec(query.order_by(*order)).all()]
    if status:
        rows = [(p, s) for p, s in rows if effective_status(p, s) == status]
    return rows


def everyone(session: Session) -> list[Person]:
    """Every person, by id."""
    return list(session.exec(select(Person).order_by(col(Person.id))).all())
