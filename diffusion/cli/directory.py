"""Commands that import and export the directory of NGOs, Field Offices, focal points and forums."""

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from diffusion import db
from diffusion.cli.base import Context, cli, console, err_console, open_output, pass_context
from diffusion.collect.directories import KINDS, export_directory, import_directory
from diffusion.rows import ImportReport


def print_report(report: ImportReport, what: str) -> None:
    """Counts, then every warning and problem line; exits 1 when some rows were bad (the good
    ones are kept). A warning (an unknown column, ignored) does not fail the import."""
    console.print(
        f"{report.source}: {report.created} {what} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.problems)} rejected"
        + (f", {len(report.skipped)} skipped" if report.skipped else ""),
        soft_wrap=True,
    )
    for skipped in report.skipped:
        console.print(skipped, soft_wrap=True)
    for warning in report.warnings:
        err_console.print(f"warning: {warning}", soft_wrap=True)
    for problem in report.problems:
        err_console.print(problem, soft_wrap=True)
    if report.problems:
        # sys.exit, not click's Exit: cli.main runs click in non-standalone mode, which
        # would turn Exit into a return value and lose the status.
        sys.exit(1)


@cli.group()
def directory() -> None:
    """The directory: NGOs, Field Offices, Sector focal points and forums."""


@directory.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    help="What a CSV file holds (default: told from its header); with YAML, import only this.",
)
@pass_context
def directory_import(ctx: Context, file: Path, kind: str | None) -> None:
    """Import a directory from CSV or YAML; re-importing updates rows in place.

    A YAML file may hold the lists organisations, field_offices, focal_points and forums;
    a CSV file holds one of them. Bad rows are listed as FILE:LINE: reason and the command
    exits 1, while the good rows are imported. An unknown column or field is named in a
    warning and ignored.

    \b
    Example:
      diffusion directory import ngos.csv
      diffusion directory import directory.yaml
      diffusion directory import offices.csv --kind field_offices
    """
    engine = ctx.engine
    with db.session_scope(engine) as session:
        report = import_directory(session, file, now=datetime.now(UTC), kind=kind)
    print_report(report, "rows")


@directory.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "yaml"]),
    default="yaml",
    show_default=True,
    help="csv: the NGOs; yaml: the whole directory.",
)
@click.option(
    "-o", "--output", metavar="FILE", help="Write to FILE (`-`: standard output, the default)."
)
@pass_context
def directory_export(ctx: Context, fmt: str, output: str | None) -> None:
    """Write the directory in a form `directory import` reads back.

    \b
    Example:
      diffusion directory export --format csv -o ngos.csv
      diffusion directory export -o - > directory.yaml
    """
    target = open_output(output) if output not in (None, "-") else None
    engine = ctx.engine
    with db.session_scope(engine) as session:
        text = export_directory(session, fmt)
    if target is None:
        click.echo(text, nl=False)
        return
    with target:
        target.write(text.encode("utf-8"))
    err_console.print(f"Directory written to {output}")
