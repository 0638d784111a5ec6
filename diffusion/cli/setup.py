"""Commands that prepare the data directory and the database."""

import click

from diffusion import db, keys
from diffusion.cli.base import Context, cli, console, pass_context
from diffusion.errors import ConfigError
from diffusion.runtime import Runtime


def prepare_keys(runtime: Runtime, *, new_key: bool = False) -> str:
    """Make sure links can be signed: the environment's keys, else the key file, made once.

    A key file missing where links were already mailed is an error: a new key would break
    every one of them, so that takes `--new-key`. Returns what was done, for the editor.
    """
    settings = runtime.settings
    if settings.keys_from_environment:
        if new_key:
            raise ConfigError(
                "--new-key: the signing key comes from DIFFUSION_SECRET_KEY(S); change it there"
            )
        settings.signing_keys()
        return "signing key: from the environment"
    path = settings.key_file
    if new_key:
        keys.replace_key_file(path)
        return f"signing key: new key in {path} (links signed with the previous one still work)"
    if not path.exists():
        if keys.links_issued(runtime.engine):
            raise ConfigError(
                f"{path}: no signing key file, but this database has subscribers or editions "
                "whose links were signed with a key: restore the file (or set "
                "DIFFUSION_SECRET_KEY as on the other hosts); `diffusion init --new-key` makes "
                "a new key and breaks every link already mailed"
            )
    keys.create_key_file(path)
    return f"signing key: {path}"


@cli.command()
@click.option(
    "--new-key",
    is_flag=True,
    help="Make a new signing key; links signed with the old one keep working.",
)
@pass_context
def init(ctx: Context, new_key: bool) -> None:
    """Create the data directory, the signing key and bring the database to the latest schema.

    \b
    Example:
      DIFFUSION_HOME=/srv/diffusion diffusion init
      diffusion init --new-key     # rotate the key of signed links
    """
    settings = ctx.settings
    for folder in (settings.var_dir, settings.feeds_dir):
        folder.mkdir(parents=True, exist_ok=True)
    db.upgrade(settings.database)
    done = prepare_keys(ctx.runtime, new_key=new_key)
    console.print(f"Data directory ready: {settings.home}", highlight=False)
    console.print(done, highlight=False, markup=False)


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
