"""Commands that import, list, add and remove subscribers."""

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from diffusion import db, i18n
from diffusion.audiences import load_rules
from diffusion.cli import Context, cli, console, pass_context
from diffusion.cli.directory import print_report
from diffusion.collect.subscribers import (
    SUBSCRIBER_FIELDS,
    add_subscriber,
    import_subscribers,
    list_subscribers,
    remove_all_subscribers,
    remove_subscriber,
)
from diffusion.errors import UnknownRecord
from diffusion.models import AUDIENCES, CADENCES, SECTORS, SUBSCRIBER_STATUSES

# What `list` shows: every field an import reads (so a CSV export imports again), and status.
_COLUMNS = (*SUBSCRIBER_FIELDS, "status")


@cli.group()
def subscribers() -> None:
    """The people who receive editions."""


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def subscribers_import(ctx: Context, file: Path) -> None:
    """Import subscribers from CSV; re-importing updates them in place by address.

    Columns: email,name,language,audience,key and optionally sectors,themes,regions,cadence.
    Imported subscribers are active: importing asserts that consent was collected elsewhere.
    Bad rows are listed as FILE:LINE: reason and the command exits 1; good rows are kept.

    \b
    Example:
      diffusion subscribers import subscribers.csv
    """
    engine = ctx.engine
    with db.session_scope(engine) as session:
        report = import_subscribers(
            session, file, now=datetime.now(UTC), rules=load_rules(ctx.settings.routing)
        )
    print_report(report, "subscribers")


@subscribers.command("list")
@click.option("--audience", type=click.Choice(AUDIENCES), help="Only this audience.")
@click.option("--status", type=click.Choice(SUBSCRIBER_STATUSES), help="Only this status.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@pass_context
def subscribers_list(ctx: Context, audience: str | None, status: str | None, fmt: str) -> None:
    """List subscribers, optionally of one audience or status.

    \b
    Example:
      diffusion subscribers list --audience ngo
      diffusion subscribers list --status active --format csv > active.csv
    """
    engine = ctx.engine
    with db.session_scope(engine) as session:
        rows = [
            {column: getattr(s, column) for column in _COLUMNS}
            for s in list_subscribers(session, audience=audience, status=status)
        ]
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()})
        click.echo(out.getvalue(), nl=False)
    else:
        table = Table(*_COLUMNS, title=f"{len(rows)} subscribers")
        for row in rows:
            table.add_row(*(", ".join(v) if isinstance(v, list) else str(v) for v in row.values()))
        console.print(table)


@subscribers.command("add")
@click.argument("email")
@click.option("--audience", required=True, type=click.Choice(AUDIENCES))
@click.option("--key", default="", help="Organisation slug, Sector, Field Office or country code.")
@click.option("--name", default="", help="How the greeting addresses them.")
@click.option(
    "--language", default="en", show_default=True, help="One of the configured `languages`."
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
    language: str,
    sectors: tuple[str, ...],
    themes: tuple[str, ...],
    cadence: str,
) -> None:
    """Add a subscriber (active at once), or update the one with this address.

    \b
    Example:
      diffusion subscribers add librarian@ifla.example.org --audience ngo --key ifla --language fr
      diffusion subscribers add desk@unesco.example.org --audience sector --key ED --cadence weekly
    """
    language = i18n.offered_language(language, ctx.settings.languages)
    engine = ctx.engine
    with db.session_scope(engine) as session:
        subscriber = add_subscriber(
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
            rules=load_rules(ctx.settings.routing),
        )
        segment = f"{subscriber.audience}:{subscriber.key}" if subscriber.key else audience
    console.print(f"Subscribed {subscriber.email} ({segment}, {subscriber.language})")


@subscribers.command("remove")
@click.argument("email", required=False)
@click.option("--all", "everyone", is_flag=True, help="Remove every subscriber.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (with --all).")
@pass_context
def subscribers_remove(ctx: Context, email: str | None, everyone: bool, yes: bool) -> None:
    """Erase a subscriber's personal data: their row and every outbox message to them.

    This deletes, it does not mark: the person disappears from the database. To stop
    mail while keeping the history, they use the unsubscribe link instead.

    \b
    Example:
      diffusion subscribers remove someone@example.org
      diffusion subscribers remove --all --yes
    """
    if bool(email) == everyone:
        raise click.UsageError("give either an EMAIL or --all")
    engine = ctx.engine
    if everyone:
        if not yes:
            click.confirm("Remove every subscriber and the whole outbox?", abort=True)
        with db.session_scope(engine) as session:
            count = remove_all_subscribers(session)
        console.print(f"Removed {count} subscribers.")
        return
    with db.session_scope(engine) as session:
        removed = remove_subscriber(session, email or "")
    if not removed:
        raise UnknownRecord(f"no subscriber with the address {email}; see `subscribers list`")
    console.print(f"Removed {email}.", highlight=False)
