"""Commands that prepare the data directory and the database."""

import click

from diffusion import db
from diffusion.cli import Context, cli, console, pass_context


@cli.command()
@pass_context
def init(ctx: Context) -> None:
    """Create the data directory and bring the database to the latest schema.

    \b
    Example:
      DIFFUSION_HOME=/srv/diffusion diffusion init
    """
    settings = ctx.settings
    for folder in (settings.var_dir, settings.feeds_dir):
        folder.mkdir(parents=True, exist_ok=True)
    db.upgrade(settings.database)
    console.print(f"Data directory ready: {settings.home}")


@cli.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_context
def db_upgrade(ctx: Context, revision: str) -> None:
    """Apply the migrations the database does not have yet.

    \b
    Example:
      DIFFUSION_DATABASE_URL=postgresql://postgres@127.0.0.1/diffusion diffusion db upgrade
    """
    db.upgrade(ctx.settings.database, revision)
    console.print(f"Database at revision {revision}.")
