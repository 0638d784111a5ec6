"""The editors' preview: exactly what an audience or a subscriber would receive."""

import contextlib
import sys
import tempfile
import webbrowser
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db, i18n, render, subscriptions
from diffusion.cli import PERIOD, Context, cli, err_console, open_output, parse_now, pass_context
from diffusion.config import Settings
from diffusion.contracts import Digest, RenderedEdition
from diffusion.deliver.message import MessageTemplate
from diffusion.editions import default_periods_said, digest_for
from diffusion.errors import InvalidInput, UnknownRecord
from diffusion.links import archive_url
from diffusion.models import Edition
from diffusion.personalise import personalise
from diffusion.select.rules import parse_audience

FORMATS = ("text", "html", "mjml", "eml")
SAMPLE_NAME = "Ana Sample"
SAMPLE_EMAIL = "ana.sample@example.org"
SAMPLE_ID = 0  # no subscriber has id 0: links in a preview lead nowhere real


@dataclass(frozen=True)
class PreviewRecipient:
    """The reader a preview is personalised for: a subscriber, or a sample person."""

    id: int | None
    email: str
    name: str
    language: str


@dataclass(frozen=True)
class Preview:
    """One audience's or subscriber's edition, rendered and personalised for one reader."""

    rendered: RenderedEdition
    recipient: PreviewRecipient
    html: str
    text: str
    eml: bytes

    def as_bytes(self, fmt: str) -> bytes:
        if fmt == "eml":
            return self.eml
        if fmt == "mjml":
            return self.rendered.mjml.encode()
        return (self.html if fmt == "html" else self.text).encode()


def _subscriber(engine: Engine, email: str) -> PreviewRecipient:
    with db.session_scope(engine) as session:
        row = subscriptions.find_person(session, email)
        if row is None:
            raise UnknownRecord(
                f"no subscriber {email!r}; check the address with `diffusion subscribers list`"
            )
        return PreviewRecipient(row.id, row.email, row.name, row.language)


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
        else PreviewRecipient(SAMPLE_ID, SAMPLE_EMAIL, SAMPLE_NAME, language)
    )
    digest = digest_for(
        engine,
        settings,
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
    reader = PreviewRecipient(
        recipient.id, recipient.email, recipient.name, digest.segment.language
    )
    values = message.values(reader)
    html_part, text_part = personalise(rendered, values)
    return Preview(rendered, reader, html_part, text_part, message.personalise(reader))


def _open_in_browser(html_part: str, output: Path | None) -> Path:
    """Open the HTML in a browser: the file just written if it is HTML, else a temporary one."""
    if output is None or output.suffix.lower() not in (".html", ".htm"):
        with tempfile.NamedTemporaryFile(
            "w", suffix=".html", prefix="diffusion-preview-", delete=False, encoding="utf-8"
        ) as handle:
            handle.write(html_part)
            output = Path(handle.name)
    webbrowser.open(output.resolve().as_uri())
    return output.resolve()


@cli.command()
@click.option(
    "--audience", "-a", metavar="AUDIENCE[:KEY]", help="e.g. ngo:ifla, sector:ED, public."
)
@click.option("--lang", "language", metavar="LANG", help="Language (default: default_language).")
@click.option("--subscriber", metavar="EMAIL", help="Preview what this subscriber receives.")
@click.option(
    "--period",
    type=PERIOD,
    help="Default: the past month (or week), which the scheduler sends next.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for a terminal, html, the mjml source, or the complete eml message.",
)
@click.option(
    "-o", "--output", metavar="FILE", help="Write to FILE (`-`: standard output, the default)."
)
@click.option(
    "--open",
    "open_browser",
    is_flag=True,
    help="Open the HTML in a web browser; prints only the path of the file opened.",
)
@click.option("--now", hidden=True, help="Pretend it is this ISO date-time (for tests).")
@pass_context
def preview(
    ctx: Context,
    audience: str | None,
    language: str | None,
    subscriber: str | None,
    period: str | None,
    fmt: str,
    output: str | None,
    open_browser: bool,
    now: str | None,
) -> None:
    """Show exactly what an audience (or one subscriber) would receive; nothing is sent.

    The edition is built from the database, rendered and personalised for a sample
    reader (or the subscriber), as delivery would send it.

    \b
    Example:
      diffusion preview --audience ngo:ifla --lang fr
      diffusion preview --audience sector:ED --format html --open
      diffusion preview --subscriber ana@example.org --format eml -o ana.eml
      diffusion preview --audience public --format eml -o - | head
    """
    # Opened first: a path that cannot be written is said before any work is done.
    target = open_output(output) if output is not None else None
    ctx.require_keys()  # it signs links: a bad key stops it here, naming its source
    settings = ctx.settings
    engine = ctx.engine
    if period is None:
        err_console.print(default_periods_said(parse_now(now), settings))
    try:
        result = build_preview(
            engine,
            settings,
            audience=audience,
            language=language,
            subscriber_email=subscriber,
            period=period,
            now=parse_now(now),
        )
    finally:
        engine.dispose()
    data = result.as_bytes(fmt)
    written = None if output in (None, "-") else Path(output or "")
    if target is not None:
        with target if written else contextlib.nullcontext(target):
            target.write(data)
            target.flush()
        if written and not open_browser:
            err_console.print(f"Wrote {fmt} preview to {written} ({len(data)} bytes).")
    elif not open_browser:  # --open alone prints the path it opened, not 30 KB of HTML
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    if result.rendered.trimmed:
        err_console.print(
            f"Note: {result.rendered.trimmed} entries were left out of the HTML to stay under "
            f"{render.GMAIL_CLIP_BYTES} bytes; the text part carries them all."
        )
    if open_browser:
        click.echo(_open_in_browser(result.html, written))
