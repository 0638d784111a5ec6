"""The editors' preview: exactly what an audience or a subscriber would receive."""

import contextlib
import sys
import tempfile
import webbrowser
from pathlib import Path

import click

from diffusion import render
from diffusion.cli.base import (
    PERIOD,
    Context,
    cli,
    err_console,
    open_output,
    parse_now,
    pass_context,
)
from diffusion.preview import FORMATS, build_preview
from diffusion.select.periods import default_periods_said


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
    result = build_preview(
        engine,
        settings,
        rules=ctx.rules,
        audience=audience,
        language=language,
        subscriber_email=subscriber,
        period=period,
        now=parse_now(now),
    )
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
