"""The service at a glance: sources, the outbox, drafts waiting, people no longer mailed."""

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from diffusion import subscriptions
from diffusion.collect.sources import list_sources
from diffusion.deliver.status import outbox_totals
from diffusion.models import Edition, Person, Source

GONE = ("bounced", "complained", "unsubscribed")


@dataclass(frozen=True)
class ServiceStatus:
    """What `diffusion status` shows, read in one session (the jobs come from the scheduler)."""

    sources: list[Source]
    outbox: dict[str, int]  # messages per state
    drafts: int  # editions waiting for approval
    gone: dict[str, int]  # people per status of GONE


def service_status(session: Session) -> ServiceStatus:
    suppressed = dict(
        session.exec(
            select(Person.status, sa.func.count())
            .where(col(Person.status).in_(subscriptions.SUPPRESSED))
            .group_by(Person.status)
        ).all()
    )
    return ServiceStatus(
        sources=list_sources(session),
        outbox=outbox_totals(session),
        drafts=session.exec(select(sa.func.count()).where(Edition.status == "draft")).one(),
        gone={name: suppressed.get(name, 0) for name in GONE},
    )
