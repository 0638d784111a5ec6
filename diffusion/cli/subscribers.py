"""Commands over people and their subscriptions: import, list, add, show, approve, erase."""

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from sqlmodel import Session

from diffusion import db, i18n, subscriptions
from diffusion.cli.base import (
    Context,
    cli,
    console,
    err_console,
    open_output,
    pass_context,
    print_error,
)
from diffusion.cli.directory import print_report
from diffusion.cli.output import Column, Listing, emit, emit_sections, format_option
from diffusion.errors import UnknownRecord
from diffusion.models import AUDIENCES, CADENCES, SECTORS, SUBSCRIBER_STATUSES, Person
from diffusion.subscriptions import SUBSCRIBER_FIELDS, add_subscriber, import_subscribers

# What `list` shows, one row per subscription: every field an import reads (so a CSV export
# imports again), and the subscription's status (its person's when that is not active).
_COLUMNS = (*SUBSCRIBER_FIELDS, "status")
_FREE_TEXT = ("name", "sectors", "themes", "regions")  # may wrap in a table


@cli.group()
def subscribers() -> None:
    """The people who receive editions, and their subscriptions."""


def _person(session: Session, email: str) -> Person:
    person = subscriptions.find_person(session, email)
    if person is None:
        raise UnknownRecord(f"no subscriber with the address {email}; see `subscribers list`")
    return person


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def subscribers_import(ctx: Context, file: Path) -> None:
    """Import subscriptions from CSV; a known address gains or updates the row's subscription.

    Columns: email,name,language,audience,key and optionally sectors,themes,regions,cadence.
    Imported subscriptions are active: importing asserts that consent was collected elsewhere.
    Whoever unsubscribed, bounced, complained, was erased or left that subscription is skipped
    and named as FILE:LINE. Bad rows are listed as FILE:LINE: reason and the command exits 1;
    good rows are kept. An unknown column is named in a warning and ignored.

    \b
    Example:
      diffusion subscribers import subscribers.csv
    """
    with db.session_scope(ctx.engine) as session:
        report = import_subscribers(
            session,
            file,
            now=datetime.now(UTC),
            secret=ctx.settings.signing_keys(),
            rules=ctx.rules,
        )
    print_report(report, "subscriptions")


@subscribers.command("list")
@click.option("--audience", type=click.Choice(AUDIENCES), help="Only this audience.")
@click.option("--status", type=click.Choice(SUBSCRIBER_STATUSES), help="Only this status.")
@format_option
@pass_context
def subscribers_list(
    ctx: Context, audience: str | None, status: str | None, fmt: str | None
) -> None:
    """List subscriptions, one row each, optionally of one audience or status.

    The CSV imports back with `subscribers import`: rows whose status is not active are
    skipped there, since an import makes a subscription active.

    \b
    Example:
      diffusion subscribers list --audience ngo
      diffusion subscribers list --status awaiting_approval
      diffusion subscribers list --status active --format csv > active.csv
    """
    with db.session_scope(ctx.engine) as session:
        rows = [
            {
                **{column: getattr(person, column) for column in ("email", "name", "language")},
                **{
                    column: getattr(subscription, column)
                    for column in SUBSCRIBER_FIELDS
                    if column not in ("email", "name", "language")
                },
                "status": subscriptions.effective_status(person, subscription),
            }
            for person, subscription in subscriptions.listing(
                session, audience=audience, status=status
            )
        ]
    columns = [Column(name, wrap=name in _FREE_TEXT) for name in _COLUMNS]
    listing = Listing(columns, title=f"{len(rows)} subscriptions")
    for row in rows:
        listing.add(*(row[column] for column in _COLUMNS))
    emit(listing, fmt, console)


@subscribers.command("add")
@click.argument("email")
@click.option("--audience", required=True, type=click.Choice(AUDIENCES))
@click.option("--key", default="", help="Organisation slug, Sector, Field Office or country code.")
@click.option("--name", default="", help="How the greeting addresses them.")
@click.option(
    "--language", help="One of the configured `languages` (default: en, or the person's own)."
)
@click.option("--sector", "sectors", multiple=True, type=click.Choice(list(SECTORS)))
@click.option("--theme", "themes", multiple=True, help="Only items with this theme (repeat).")
@click.option("--cadence", type=click.Choice(CADENCES), default="monthly", show_default=True)
@pass_context
def subscribers_add(
    ctx: Context,
    email: str,
    audience: str,
    key: str,
    name: str,
    language: str | None,
    sectors: tuple[str, ...],
    themes: tuple[str, ...],
    cadence: str,
) -> None:
    """Add a subscription (active at once); a known address gains it, or has it updated.

    Refused for an address that unsubscribed, bounced, complained or was erased: only their
    own confirmed opt-in can bring them back.

    \b
    Example:
      diffusion subscribers add librarian@ifla.example.org --audience ngo --key ifla --language fr
      diffusion subscribers add desk@unesco.example.org --audience sector --key ED --cadence weekly
    """
    if language is not None:
        language = i18n.offered_language(language, ctx.settings.languages)
    try:
        with db.session_scope(ctx.engine) as session:
            person = add_subscriber(
                session,
                email=email,
                name=name,
                language=language,
                audience=audience,
                key=key,
                sectors=sectors,
                themes=themes,
                cadence=cadence,
                now=datetime.now(UTC),
                secret=ctx.settings.signing_keys(),
                rules=ctx.rules,
                origin=subscriptions.Origin.cli("subscribers add"),
            )
            held = len(subscriptions.subscriptions_of(session, person))
    except subscriptions.Suppressed as exc:
        print_error(f"not added: {exc}")
        sys.exit(1)
    segment = f"{audience}:{key}" if key else audience
    console.print(
        f"Subscribed {person.email} ({segment}, {person.language}); {held} subscription(s)"
    )


@subscribers.command("show")
@click.argument("email")
@format_option
@pass_context
def subscribers_show(ctx: Context, email: str, fmt: str | None) -> None:
    """Show one person: their status, then each of their subscriptions.

    \b
    Example:
      diffusion subscribers show librarian@ifla.example.org
      diffusion subscribers show natcom.bd@natcom.example.org --format json
    """
    with db.session_scope(ctx.engine) as session:
        person = _person(session, email)
        held = subscriptions.subscriptions_of(session, person)
    who = Listing(
        [
            Column("email"),
            Column("name", wrap=True),
            Column("language"),
            Column("status"),
            Column("soft bounces", numeric=True),
            Column("consent at"),
        ],
        title="Person",
    )
    consent = person.consent_at.isoformat(timespec="seconds") if person.consent_at else ""
    who.add(person.email, person.name, person.language, person.status, person.soft_bounces, consent)
    what = Listing(
        [
            Column("audience"),
            Column("key"),
            Column("sectors", wrap=True),
            Column("themes", wrap=True),
            Column("regions", wrap=True),
            Column("cadence"),
            Column("status"),
        ],
        title=f"{len(held)} subscription(s)",
    )
    for s in held:
        what.add(s.audience, s.key, s.sectors, s.themes, s.regions, s.cadence, s.status)
    emit_sections({"person": who, "subscriptions": what}, fmt, console)


@subscribers.command("export-person")
@click.argument("email")
@click.option(
    "-o", "--output", metavar="FILE", help="Write to FILE (`-`: standard output, the default)."
)
@pass_context
def subscribers_export_person(ctx: Context, email: str, output: str | None) -> None:
    """Everything held about one person, as JSON: subscriptions, consent records, messages.

    \b
    Example:
      diffusion subscribers export-person librarian@ifla.example.org -o librarian.json
      diffusion subscribers export-person librarian@ifla.example.org | jq .consent
    """
    # Opened first: a path that cannot be written is one line before any work.
    target = open_output(output) if output not in (None, "-") else None
    with db.session_scope(ctx.engine) as session:
        data = subscriptions.export_person(session, _person(session, email))
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if target is None:
        click.echo(text, nl=False)
        return
    with target:
        target.write(text.encode("utf-8"))
    err_console.print(f"Data held about {email} written to {output}")


@subscribers.command("approve")
@click.argument("email", required=False)
@click.option("--all", "everyone", is_flag=True, help="Approve every waiting subscription.")
@pass_context
def subscribers_approve(ctx: Context, email: str | None, everyone: bool) -> None:
    """Let waiting subscriptions to audiences with non-public items receive their mail.

    `subscribers list --status awaiting_approval` shows who waits.

    \b
    Example:
      diffusion subscribers approve desk@unesco.example.org
      diffusion subscribers approve --all
    """
    if bool(email) == everyone:
        raise click.UsageError("give either an EMAIL or --all")
    with db.session_scope(ctx.engine) as session:
        if email:
            _person(session, email)
        chosen = subscriptions.waiting(session, email)
        approved = subscriptions.approve(
            session,
            chosen,
            origin=subscriptions.Origin.editor("subscribers approve"),
            now=datetime.now(UTC),
        )
    console.print(f"Approved {len(approved)} subscription(s).")


def _erase(ctx: Context, email: str) -> None:
    with db.session_scope(ctx.engine) as session:
        subscriptions.erase(
            session,
            _person(session, email),
            secret=ctx.settings.signing_keys(),
            now=datetime.now(UTC),
        )
    console.print(f"Erased {email}; its address is kept only as a keyed hash.")


@subscribers.command("erase")
@click.argument("email")
@pass_context
def subscribers_erase(ctx: Context, email: str) -> None:
    """Erase a person: their subscriptions, consent records and outbox messages.

    Only a keyed hash of the address is kept, so that no later import or addition mails them
    again (their own confirmed opt-in still can).

    \b
    Example:
      diffusion subscribers erase someone@example.org
    """
    _erase(ctx, email)


@subscribers.command("remove")
@click.argument("email", required=False)
@click.option("--all", "everyone", is_flag=True, help="Erase every subscriber.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (with --all).")
@pass_context
def subscribers_remove(ctx: Context, email: str | None, everyone: bool, yes: bool) -> None:
    """Erase a subscriber (as `erase` does), or every subscriber with --all.

    \b
    Example:
      diffusion subscribers remove someone@example.org
      diffusion subscribers remove --all --yes
    """
    if bool(email) == everyone:
        raise click.UsageError("give either an EMAIL or --all")
    if email:
        _erase(ctx, email)
        return
    if not yes:
        click.confirm("Erase every subscriber and their outbox messages?", abort=True)
    now = datetime.now(UTC)
    with db.session_scope(ctx.engine) as session:
        people = subscriptions.everyone(session)
        for person in people:
            subscriptions.erase(session, person, secret=ctx.settings.signing_keys(), now=now)
    console.print(f"Removed {len(people)} subscribers.")


@subscribers.command("purge-pending")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    help="Requests older than this (default: the pending_purge_days setting).",
)
@pass_context
def subscribers_purge_pending(ctx: Context, days: int | None) -> None:
    """Remove the subscription requests never confirmed after some days.

    \b
    Example:
      diffusion subscribers purge-pending --days 30
    """
    with db.session_scope(ctx.engine) as session:
        count = subscriptions.purge_pending(
            session,
            older_than=timedelta(days=days or ctx.settings.subscribe.pending_purge_days),
            now=datetime.now(UTC),
        )
    console.print(f"Purged {count} request(s) never confirmed.")
