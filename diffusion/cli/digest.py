"""The editors' digest commands: build editions per segment, list them, show one."""

import json
from datetime import UTC, datetime

import click
from rich.text import Text

from diffusion.approval import approve_editions, get_edition, list_editions
from diffusion.cli.base import PERIOD, Context, cli, console, err_console, parse_now, pass_context
from diffusion.cli.output import Column, Listing, emit, format_option, resolve
from diffusion.editions import build_editions
from diffusion.models import EDITION_STATUSES
from diffusion.select.periods import default_periods_said

SHOW_FORMATS = ("text", "html", "json")


@cli.group("digest")
def digest_group() -> None:
    """Build, list and show the editions of each audience segment."""


@digest_group.command("build")
@click.option(
    "--period",
    type=PERIOD,
    help="Default: the past month (or week), which the scheduler sends next.",
)
@click.option(
    "--audience", "-a", metavar="AUDIENCE[:KEY]", help="Only this audience, e.g. sector:ED."
)
@click.option("--now", hidden=True, help="Pretend it is this ISO date-time (for tests).")
@format_option
@pass_context
def digest_build(
    ctx: Context, period: str | None, audience: str | None, now: str | None, fmt: str | None
) -> None:
    """Build and store one edition per segment of active subscribers.

    Each segment (same audience, key, language, narrowing and cadence) gets one edition a
    period, rendered once. Editions are drafts when `require_approval` is set, else approved;
    a segment with nothing new gets an `empty` edition, which is not sent. Approved and sent
    editions are kept as they are; drafts are rebuilt.

    \b
    Example:
      diffusion digest build --period 2026-11
      diffusion digest build --period 2026-W47 --audience sector:ED
    """
    settings = ctx.settings
    engine = ctx.engine
    if period is None:
        err_console.print(default_periods_said(parse_now(now), settings))
    results = build_editions(
        engine, settings, rules=ctx.rules, now=parse_now(now), period=period, audience=audience
    )
    if not results:
        console.print("No segment to build: no active subscriber matches.")
        return
    listing = Listing(
        [
            Column("edition", numeric=True),
            Column("segment", joined=True),
            Column("period"),
            Column("subscribers", numeric=True),
            Column("items", numeric=True),
            Column("more", numeric=True),
            Column("status"),
            Column("action"),
        ]
    )
    for result in results:
        listing.add(
            result.edition_id,
            result.segment,
            result.period,
            result.subscribers,
            result.item_count,
            result.more_count,
            result.status,
            result.action,
        )
    emit(listing, fmt, console)
    notes = console if resolve(fmt) == "table" else err_console  # a pipe gets the rows only
    empty = [result.segment for result in results if result.status == "empty"]
    actions = {name: sum(r.action == name for r in results) for name in ("created", "rebuilt")}
    notes.print(
        f"{len(results)} segments: {actions['created']} created, {actions['rebuilt']} rebuilt, "
        f"{len(results) - sum(actions.values())} kept."
    )
    if empty:
        notes.print(f"{len(empty)} empty (nothing new; will not be sent): {', '.join(empty)}")
    for result in results:
        if result.warning:
            # A Text, not markup: the warning quotes keys and names as they were typed.
            notes.print(Text.assemble(("Warning: ", "bold yellow"), result.warning))


@digest_group.command("list")
@click.option("--period", type=PERIOD, help="Only this period.")
@click.option("--status", type=click.Choice(EDITION_STATUSES), help="Only this status.")
@format_option
@pass_context
def digest_list(ctx: Context, period: str | None, status: str | None, fmt: str | None) -> None:
    """List stored editions, newest period first.

    \b
    Example:
      diffusion digest list --period 2026-11 --status draft
      diffusion digest list --format tsv | grep ngo:ifla
    """
    engine = ctx.engine
    editions = list_editions(engine, period=period, status=status)
    if not editions and resolve(fmt) == "table":
        console.print("No editions.")
        return
    listing = Listing(
        [
            Column("id", numeric=True),
            Column("period"),
            Column("segment", joined=True),
            Column("items", numeric=True),
            Column("status"),
            Column("subject", wrap=True),
        ]
    )
    for edition in editions:
        listing.add(
            edition.id,
            edition.period,
            edition.segment,
            edition.item_count,
            edition.status,
            edition.subject,
        )
    emit(listing, fmt, console)


@digest_group.command("show")
@click.argument("edition_id", type=int)
@click.option("--format", "fmt", type=click.Choice(SHOW_FORMATS), default="text", show_default=True)
@pass_context
def digest_show(ctx: Context, edition_id: int, fmt: str) -> None:
    """Show a stored edition: its text part, its HTML, or all its fields as JSON.

    The parts still carry the per-recipient placeholders filled in at sending.

    \b
    Example:
      diffusion digest show 12 --format html > edition.html
    """
    engine = ctx.engine
    edition = get_edition(engine, edition_id)
    if fmt == "json":
        click.echo(json.dumps(edition.model_dump(mode="json"), ensure_ascii=False, indent=2))
    elif fmt == "html":
        click.echo(edition.html)
    else:
        click.echo(f"Subject: {edition.subject}\n\n{edition.text}")


@digest_group.command("approve")
@click.argument("edition_ids", nargs=-1, type=int)
@click.option("--all", "approve_all", is_flag=True, help="Every draft (of --period, if given).")
@click.option("--period", type=PERIOD, help="Only the drafts of this period.")
@pass_context
def digest_approve(
    ctx: Context, edition_ids: tuple[int, ...], approve_all: bool, period: str | None
) -> None:
    """Approve draft editions: the scheduler's send job then sends them.

    With `require_approval = true`, built editions wait as drafts until approved here.

    \b
    Example:
      diffusion digest approve 12 13
      diffusion digest approve --all --period 2026-11
    """
    if bool(edition_ids) == approve_all:
        raise click.UsageError("give edition IDs, or --all (with --period to narrow it)")
    engine = ctx.engine
    approved = approve_editions(
        engine, now=datetime.now(UTC), edition_ids=edition_ids, period=period
    )
    if not approved:
        console.print("No draft to approve.")
        return
    console.print(
        f"Approved {len(approved)} edition(s): {', '.join(map(str, approved))}. "
        "The next send job sends them (or now: diffusion jobs run send)."
    )
