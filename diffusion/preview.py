"""Previews: exactly what an audience or a subscriber would receive, built and stored nowhere.

A job beside editions.py: it joins selection (the digest), rendering and delivery's message
template, so it sits above the three stages; the CLI's `preview` only formats what it returns.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db, i18n, render, subscriptions
from diffusion.config import Settings
from diffusion.contracts import Digest, Recipient, RenderedEdition
from diffusion.deliver.message import MessageTemplate
from diffusion.editions import digest_for
from diffusion.errors import InvalidInput, UnknownRecord
from diffusion.links import archive_url
from diffusion.models import Edition
from diffusion.personalise import personalise
from diffusion.select.rules import RoutingRules, parse_audience

FORMATS = ("text", "html", "mjml", "eml")
SAMPLE_NAME = "Ana Sample"
SAMPLE_EMAIL = "ana.sample@example.org"
SAMPLE_ID = 0  # no subscriber has id 0: links in a preview lead nowhere real


@dataclass(frozen=True)
class Preview:
    """One audience's or subscriber's edition, rendered and personalised for one reader."""

    rendered: RenderedEdition
    recipient: Recipient
    html: str
    text: str
    eml: bytes

    def as_bytes(self, fmt: str) -> bytes:
        if fmt == "eml":
            return self.eml
        if fmt == "mjml":
            return self.rendered.mjml.encode()
        return (self.html if fmt == "html" else self.text).encode()


def _subscriber(engine: Engine, email: str) -> Recipient:
    with db.session_scope(engine) as session:
        row = subscriptions.find_person(session, email)
        if row is None:
            raise UnknownRecord(
                f"no subscriber {email!r}; check the address with `diffusion subscribers list`"
            )
        return Recipient.of(row)


def _web_version(engine: Engine, settings: Settings, digest: Digest) -> str | None:
    """The "view in browser" address the sent email will carry: its edition's archive page,
    once the edition is built; else the segment's news page (render's default)."""
    with db.session_scope(engine) as session:
        edition = session.exec(
            select(Edition).where(
                Edition.segment == digest.segment.id, Edition.period == digest.period.label
            )
        ).first()
        return archive_url(settings, edition.id) if edition and edition.id else None


def build_preview(
    engine: Engine,
    settings: Settings,
    *,
    rules: RoutingRules,
    audience: str | None,
    language: str | None,
    subscriber_email: str | None,
    period: str | None,
    now: datetime,
) -> Preview:
    """Build, render and personalise an edition as it would be sent, storing nothing."""
    if not audience and not subscriber_email:
        raise InvalidInput("preview: give --audience AUDIENCE[:KEY] or --subscriber EMAIL")
    language = i18n.offered_language(language or settings.default_language, settings.languages)
    name, key = parse_audience(audience or "")
    recipient = (
        _subscriber(engine, subscriber_email)
        if subscriber_email
        else Recipient(SAMPLE_ID, SAMPLE_EMAIL, SAMPLE_NAME, language)
    )
    digest = digest_for(
        engine,
        settings,
        rules=rules,
        audience=name,
        key=key or "",
        language=language,
        period=period,
        now=now,
        subscriber_email=subscriber_email,
    )
    web_version = _web_version(engine, settings, digest)
    rendered = render.render_digest(digest, settings, web_url=web_version)
    # The same template delivery builds once per edition: the preview is the message itself.
    edition = Edition(
        id=0,
        segment=digest.segment.id,
        audience=digest.segment.audience,
        key=digest.segment.key,
        language=digest.segment.language,
        cadence=digest.segment.cadence,
        period=digest.period.label,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        item_count=digest.item_count,
        created_at=now,
    )
    message = MessageTemplate.from_edition(edition, settings, now=now)
    reader = Recipient(recipient.id, recipient.email, recipient.name, digest.segment.language)
    values = message.values(reader)
    html_part, text_part = personalise(rendered, values)
    return Preview(rendered, reader, html_part, text_part, message.personalise(reader))
