"""The editors' and operators' commands; the only place that turns errors into exit codes."""

import sys
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.config import Settings, load_settings
from diffusion.errors import DiffusionError, InvalidInput

console = Console()
err_console = Console(stderr=True)


class Context:
    """What every command gets: the settings, loaded once from file, environment and flags."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self._overrides = overrides
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(**self._overrides)
        return self._settings

    @property
    def engine(self) -> Engine:
        """The database engine, once the database is known to be at the current schema."""
        if self._engine is None:
            engine = db.engine_for(self.settings)
            try:
                db.require_schema(engine)
            except DiffusionError:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    def require_keys(self) -> None:
        """Stop a command that signs links before it does any work, if the key is unusable."""
        self.settings.signing_keys()


pass_context = click.make_pass_decorator(Context)


def parse_now(value: str | None) -> datetime:
    """The moment a command acts at: now, or `--now` (an ISO date-time) for tests and replays."""
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"--now {value!r}: expected an ISO date-time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), help="Data directory (DIFFUSION_HOME).")
@click.option("--database-url", help="Database URL (DIFFUSION_DATABASE_URL).")
@click.version_option(package_name="diffusion")
@click.pass_context
def cli(ctx: click.Context, home: str | None, database_url: str | None) -> None:
    """Diffusion: targeted newsletters and feeds for NGO partners and UNESCO.

    \b
    Example:
      diffusion demo
      diffusion items list --kind ngo_action --limit 5
    """
    ctx.obj = Context({"home": home, "database_url": database_url})


def main() -> None:
    """Entry point: runs the CLI and turns Diffusion's errors into a message and exit code 2."""
    from diffusion.cli import commands  # noqa: F401  (registers the commands)

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DiffusionError as exc:
        # One line, whatever the width; the message may quote data (a server's reason phrase).
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
