"""The feeds command: write every RSS and Atom feed from the database."""

from pathlib import Path

import click

from diffusion.cli.base import Context, cli, console, parse_now, pass_context
from diffusion.deliver.feeds import build_feeds


@cli.group("feeds")
def feeds_group() -> None:
    """RSS 2.0 and Atom feeds per audience, Sector, country and Field Office."""


@feeds_group.command("build")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write to (default: var/feeds under the data directory).",
)
@click.option("--now", hidden=True, help="Pretend it is this ISO date-time (for tests).")
@pass_context
def feeds_build(ctx: Context, out: Path | None, now: str | None) -> None:
    """Write the public feeds; files whose content did not change are left untouched.

    Layout: AUDIENCE[/KEY].LANG.rss|atom, e.g. sector/ED.en.atom, country/BD.fr.rss,
    field_office/dhaka.en.atom, ngo/ifla.en.rss, public.fr.rss.

    \b
    Example:
      diffusion feeds build
      diffusion feeds build --out /srv/www/feeds
    """
    settings = ctx.settings
    folder = out or settings.feeds_dir
    engine = ctx.engine
    report = build_feeds(engine, settings, rules=ctx.rules, out=folder, now=parse_now(now))
    console.print(f"{report.summary()} in {folder}; {report.entries} entries in all.")
