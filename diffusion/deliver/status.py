"""What the outbox holds: messages per edition and state, and the latest errors of each."""

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from diffusion.deliver import outbox
from diffusion.models import OUTBOX_STATES, Edition


@dataclass(frozen=True)
class EditionOutbox:
    """One edition's messages: how many are in each state, and why those not sent are not."""

    edition: int
    segment: str | None  # None: the edition is gone, its rows are not
    period: str | None
    states: dict[str, int]
    last_errors: list[tuple[str, int]] = field(default_factory=list)  # (error, messages)


def outbox_status(session: Session) -> list[EditionOutbox]:
    """Every edition with rows in the outbox, by id; each state of OUTBOX_STATES counted."""
    states = outbox.counts(session)
    errors = outbox.last_errors(session)
    editions = {
        edition.id: edition
        for edition in session.exec(select(Edition).where(col(Edition.id).in_(list(states))))
    }
    return [
        EditionOutbox(
            edition=edition_id,
            segment=editions[edition_id].segment if edition_id in editions else None,
            period=editions[edition_id].period if edition_id in editions else None,
            states={state: found.get(state, 0) for state in OUTBOX_STATES},
            last_errors=errors.get(edition_id, []),
        )
        for edition_id, found in sorted(states.items())
    ]


def outbox_totals(session: Session) -> dict[str, int]:
    """Messages in each state of OUTBOX_STATES, all editions together."""
    totals = dict.fromkeys(OUTBOX_STATES, 0)
    for states in outbox.counts(session).values():
        for state, number in states.items():
            totals[state] = totals.get(state, 0) + number
    return totals
