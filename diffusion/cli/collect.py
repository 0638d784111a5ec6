"""Commands that collect updates: feed sources, the collection run, items and editorial entries."""

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from diffusion import db, validate
from diffusion.cli.base import Context, cli, console, err_console, pass_context
from diffusion.cli.directory import print_report
from diffusion.cli.output import Column, Listing, emit, format_option, resolve
from diffusion.collect import run_collection
from diffusion.collect.editorial import import_entries
from diffusion.collect.items import check_tags, count_items, find_items
from diffusion.collect.run import load_sources
from diffusion.collect.sources import (
    check_url,
    import_sources,
    list_sources,
    save_source,
    source_name,
)
from diffusion.errors import InvalidInput
from diffusion.models import CONTENT_KINDS, SECTORS, TAG_KEYS

TABLE_LIMIT = 50


@cli.command()
@click.option(
    "--source", "-s", "names", multiple=True, metavar="NAME", help="Only this source (repeatable)."
)
@format_option
@pass_context
def collect(ctx: Context, names: tuple[str, ...], fmt: str | None) -> None:
    """Fetch every feed source (or those named) and store new and changed items.

    A source that fails (timeout, HTTP error, malformed feed) is shown in red and recorded on
    the source; the others are collected all the same, and the exit status stays 0 unless
    every source failed (then 1).

    \b
    Example:
      diffusion collect
      diffusion collect --source ifla --source dakar-office
      diffusion collect --format json
    """
    settings = ctx.settings
    engine = ctx.engine
    with db.session_scope(engine) as session:
        total = len(load_sources(session, list(names) or None))
    if not total:
        console.print("No feed sources yet: add one with `diffusion sources add URL --kind KIND`.")
        return
    with Progress(
        # The description is a source's name: data, so not markup.
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("Collecting", total=total)
        summary = run_collection(
            engine,
            settings,
            now=datetime.now(UTC),
            names=list(names) or None,
            progress=lambda name: bar.update(task, advance=1, description=name),
        )
    listing = Listing(
        [
            Column("source"),
            Column("status"),
            Column("HTTP", numeric=True),
            Column("new", numeric=True),
            Column("updated", numeric=True),
            Column("error", wrap=True),
        ],
        title=f"Collected {len(summary.results)} source(s)",
    )
    for result in summary.results:
        style = {"error": "red", "not_modified": "dim", "waiting": "yellow"}.get(result.status)
        status = "not modified" if result.not_modified else result.status
        listing.add(
            result.name,
            status,
            result.http_status,
            result.new,
            result.updated,
            result.error or result.warning or "",
            style=style,
        )
    emit(listing, fmt, console)
    notes = console if resolve(fmt) == "table" else err_console  # a pipe gets the rows only
    failed = len(summary.failed)
    notes.print(
        Text.assemble(
            f"{summary.new} new, {summary.updated} updated",
            (f", {failed} source(s) failed", "red") if failed else "",
        )
    )
    if failed and failed == len(summary.results):
        # Nothing could be collected: a script or a cron job must see it (sys.exit, as
        # cli.main runs click in non-standalone mode).
        sys.exit(1)


@cli.group()
def sources() -> None:
    """The RSS/Atom feed sources that `collect` fetches."""


def _parse_tags(values: tuple[str, ...]) -> dict[str, list[str]]:
    raw: dict[str, list[str]] = {}
    for value in values:
        key, sep, given = value.partition("=")
        if not sep or not given.strip():
            raise InvalidInput(
                f"--tag {value!r}: expected KEY=VALUE with KEY one of {', '.join(TAG_KEYS)}"
            )
        raw.setdefault(key.strip(), []).extend(given.replace(";", ",").split(","))
    try:
        return check_tags(raw)
    except InvalidInput as exc:
        raise InvalidInput(f"--tag {exc}") from exc


@sources.command("add")
@click.argument("url")
@click.option("--kind", "-k", required=True, type=click.Choice(CONTENT_KINDS), help="Content kind.")
@click.option("--name", "-n", help="Short unique name (default: from the URL).")
@click.option("--language", "-l", help="Language of the entries when the feed does not say.")
@click.option("--private", is_flag=True, help="Keep the items out of public feeds and editions.")
@click.option("--tag", "-t", "tags", multiple=True, metavar="KEY=VALUE", help="Default tag.")
@pass_context
def sources_add(
    ctx: Context,
    url: str,
    kind: str,
    name: str | None,
    language: str | None,
    private: bool,
    tags: tuple[str, ...],
) -> None:
    """Add a feed source, or update the one with the same name.

    Tags given with --tag (keys: sectors, countries, regions, themes, sdgs, organisations,
    field_offices, forums) are added to every item of the source.

    \b
    Example:
      diffusion sources add https://www.ifla.org/feed/ --kind ngo_action --name ifla \\
        --tag sectors=CI --tag countries=NL --tag organisations=ifla
    """
    url = check_url(url)
    fields: dict[str, Any] = {
        "name": (name or source_name(url)).strip(),
        "url": url,
        "kind": kind,
        "language": validate.language(language) if language else None,
        "public": not private,
        "tags": _parse_tags(tags),
    }
    engine = ctx.engine
    with db.session_scope(engine) as session:
        _, state = save_source(session, **fields)
    console.print(f"Source {fields['name']} {state}: {url}", highlight=False)


@sources.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def sources_import(ctx: Context, file: Path) -> None:
    """Import feed sources from a CSV file; re-importing updates them in place.

    Columns: name,url,kind, and optionally language, public and tag columns (sectors,
    countries, themes...) whose values are separated by `;` or `,`. Bad rows are listed as
    FILE:LINE: reason and the command exits 1, while the good rows are imported. An unknown
    column is named in a warning and ignored.

    \b
    Example:
      diffusion sources import sources.csv
    """
    engine = ctx.engine
    with db.session_scope(engine) as session:
        report = import_sources(session, file)
    print_report(report, "sources")


@sources.command("list")
@format_option
@pass_context
def sources_list(ctx: Context, fmt: str | None) -> None:
    """List the feed sources with the outcome of their last collection.

    \b
    Example:
      diffusion sources list
      diffusion sources list --format tsv | cut -f1,3
    """
    with db.session_scope(ctx.engine) as session:
        rows = list_sources(session)
    listing = Listing(
        [
            Column("name"),
            Column("kind"),
            Column("public"),
            Column("url", wrap=True),
            Column("tags", wrap=True),
            Column("last fetched"),
            Column("status", numeric=True),
            Column("new", numeric=True),
            Column("error", wrap=True),
        ],
        title=f"{len(rows)} source(s)",
    )
    for row in rows:
        fetched = row.last_fetched_at.strftime("%Y-%m-%d %H:%M") if row.last_fetched_at else "never"
        listing.add(
            row.name,
            row.kind,
            row.public,
            row.url,
            " ".join(f"{key}={','.join(values)}" for key, values in row.tags.items()),
            fetched,
            row.last_status,
            row.last_new_items,
            row.last_error or "",
            style="red" if row.last_error else None,
        )
    emit(listing, fmt, console)


@cli.group()
def items() -> None:
    """The collected items: list them, import editorial entries."""


@items.command("list")
@click.option("--kind", type=click.Choice(CONTENT_KINDS), help="Only this content kind.")
@click.option("--sector", type=click.Choice(list(SECTORS)), help="Only items of this Sector.")
@click.option("--country", metavar="CC", help="Only items tagged with this ISO country code.")
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), help="Published on or after YYYY-MM-DD."
)
@click.option("--limit", type=click.IntRange(min=1), help=f"At most N (table: {TABLE_LIMIT}).")
@click.option("--count", is_flag=True, help="Print only the number of matching items.")
@format_option
@pass_context
def items_list(
    ctx: Context,
    kind: str | None,
    sector: str | None,
    country: str | None,
    since: datetime | None,
    limit: int | None,
    count: bool,
    fmt: str | None,
) -> None:
    """List collected and editorial items, newest first.

    A table shows the newest 50 unless --limit says otherwise; tsv, csv and json list every
    match. JSON gives every stored field (tags and translations included, dates in ISO 8601).

    \b
    Example:
      diffusion items list --kind ngo_action --sector ED --since 2026-11-01
      diffusion items list --country KE --count
      diffusion items list --format json --limit 10
    """
    settings = ctx.settings
    start = None
    if since:
        day = date(since.year, since.month, since.day)
        start = datetime.combine(day, datetime.min.time(), tzinfo=settings.zone)
    filters: dict[str, Any] = {"kind": kind, "sector": sector, "country": country, "since": start}
    engine = ctx.engine
    with db.session_scope(engine) as session:
        total = count_items(session, **filters)
        if count:
            shown = []
        elif resolve(fmt) == "table":
            shown = find_items(session, **filters, limit=limit or TABLE_LIMIT)
        else:
            shown = find_items(session, **filters, limit=limit)
    if count:
        click.echo(min(total, limit) if limit else total)
        return
    listing = Listing(
        [
            Column("published"),
            Column("kind"),
            Column("lang"),
            Column("title", wrap=True),
            Column("tags", wrap=True),
            Column("link", wrap=True),
        ],
        title=f"{len(shown)} of {total} item(s)",
        records=[row.model_dump(mode="json") for row in shown],
    )
    for row in shown:
        listing.add(
            row.published_at.astimezone(settings.zone).strftime("%Y-%m-%d"),
            row.kind,
            row.language + (f"+{','.join(row.translations)}" if row.translations else ""),
            row.title,
            " ".join(value for values in row.tags.values() for value in values),
            row.link or "",
        )
    emit(listing, fmt, console)


@items.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@pass_context
def items_import(ctx: Context, path: Path) -> None:
    """Import editorial entries: a Markdown file with front matter, or a folder of them.

    Front matter keys: kind, title, date (required), language, link, guid, public, summary,
    tags (sectors, countries, regions, themes, sdgs, organisations, field_offices, forums),
    translations ({fr: {title:, summary:, body:}}). Bad files are listed as FILE:LINE: reason
    and the command exits 1, while the good ones are imported; re-importing updates in place.

    \b
    Example:
      diffusion items import entries/
      diffusion items import entries/2026-11-ifla-literacy.md
    """
    settings = ctx.settings
    engine = ctx.engine
    with db.session_scope(engine) as session:
        report = import_entries(
            session, path, now=datetime.now(UTC), default_language=settings.default_language
        )
    print_report(report, "entries")
