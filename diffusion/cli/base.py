"""The command group and what its commands share: the Context, the consoles, helpers, `main`."""

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa
from rich.console import Console
from rich.text import Text
from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.cli.output import safe_text
from diffusion.config import Settings, load_settings, setting_origin
from diffusion.contracts import Period
from diffusion.errors import ConfigError, DiffusionError, InvalidInput, SchemaNotReady
from diffusion.runtime import Runtime
from diffusion.select.rules import RoutingRules

# Markup, emoji codes and highlighting are off: what the commands print quotes names, titles
# and remote servers' errors, and `[/bold]` in a name must print as typed (styles are given
# with Text.assemble or `style=`, never as markup in a string).
console = Console(markup=False, emoji=False, highlight=False)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)


class Context:
    """What every command gets: one Runtime (settings, engine, rules, keys), built on first use.

    Closed when the command ends (click's call_on_close), whatever way it ends: no command
    disposes of the engine itself.
    """

    def __init__(self, overrides: dict[str, Any]) -> None:
        self._overrides = overrides
        self._runtime: Runtime | None = None
        self._schema_checked = False

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime(load_settings(**self._overrides))
        return self._runtime

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def rules(self) -> RoutingRules:
        return self.runtime.rules

    @property
    def engine(self) -> Engine:
        """The database engine, once the database is known to be at the current schema."""
        if not self._schema_checked:
            try:
                _refuse_missing_sqlite(self.settings.database)
                engine = self.runtime.engine
            except sa.exc.ArgumentError as exc:  # not a URL, or a database nobody supports
                where = setting_origin("database_url", self.settings.home)
                raise ConfigError(f"{where}: database_url: {exc}") from exc
            try:
                db.require_schema(engine)
            except DiffusionError:
                self.runtime.close()
                raise
            self._schema_checked = True
        return self.runtime.engine

    def require_schema(self) -> None:
        """Stop a command before any work if the database is missing or at an older schema."""
        self.engine  # noqa: B018  (made and checked once, kept for the command)

    def require_keys(self) -> None:
        """Stop a command that signs links before it does any work, if the key is unusable."""
        self.runtime.keys  # noqa: B018  (read and checked once, kept for the command)

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


pass_context = click.make_pass_decorator(Context)


def _refuse_missing_sqlite(url: str) -> None:
    """Only `init` and `demo` create the database: connecting would leave an empty file."""
    parsed = sa.engine.make_url(db.normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if not Path(parsed.database or "").exists():
        raise SchemaNotReady(
            f"no database at {parsed.database}; run `diffusion init` (or `diffusion demo`) first"
        )


class PeriodType(click.ParamType[str, Any]):
    """A period label, checked when the command line is read: `2026-13` is a usage error."""

    name = "YYYY-MM|YYYY-Www"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return Period.parse(str(value), ZoneInfo("UTC")).label
        except InvalidInput as exc:
            self.fail(str(exc), param, ctx)


PERIOD = PeriodType()


def open_output(path: str) -> BinaryIO:
    """The file `-o` names, opened for writing; `-` is standard output.

    Opened before the work, so that a path that cannot be written is one line (and exit 2)
    rather than a traceback after the work is done.
    """
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "wb")  # noqa: SIM115  (closed by the caller)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {path}: {exc.strerror or exc}", param_hint="'-o' / '--output'"
        ) from exc


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
    ctx.call_on_close(ctx.obj.close)


def print_error(message: object) -> None:
    """One line on stderr; the message quotes data as it is (never read as markup)."""
    text = " ".join(safe_text(message).split())
    err_console.print(Text.assemble(("error:", "bold red"), " ", text), soft_wrap=True)


def main() -> None:
    """Entry point: runs the CLI and turns errors into one line and an exit code.

    Exit codes: 0 success; 1 the work failed (some of it); 2 the command was used wrongly
    (an unknown option, a bad value, a setting or file that cannot be used as it is).
    """
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.UsageError as exc:
        # One line, with where to look: the full usage text buries the message.
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        print_error(exc.format_message() + hint)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        print_error(exc.format_message())
        sys.exit(exc.exit_code)
    except DiffusionError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # `diffusion items list | head`: the reader has all it wanted.
        sys.stderr.close()
        sys.exit(0)
    except OSError as exc:  # a file or folder the command had to read or write
        where = f"{exc.filename}: " if exc.filename else ""
        print_error(f"{where}{exc.strerror or exc}")
        sys.exit(1)
