"""The `demo` command: a ready-to-explore installation with the bundled dataset."""

import shlex
from datetime import UTC, datetime

import click
from rich.table import Table
from rich.text import Text

from diffusion import db
from diffusion.cli.base import Context, cli, console, pass_context
from diffusion.cli.setup import prepare_keys
from diffusion.demo import DemoSummary, load_demo
from diffusion.models import CONTENT_KINDS


def _summary_tables(summary: DemoSummary) -> list[Table]:
    directory = Table("directory", "rows", title="Directory")
    for label, count in (
        ("NGOs in official partnership", summary.organisations),
        ("Field Offices", summary.field_offices),
        ("Sector focal points", summary.focal_points),
        ("forums", summary.forums),
    ):
        directory.add_row(label, str(count))
    languages = sorted({language for _, language in summary.items})
    items = Table("kind", *languages, title=f"{summary.item_count} items")
    kinds = list(CONTENT_KINDS) + sorted({k for k, _ in summary.items} - set(CONTENT_KINDS))
    for kind in kinds:
        items.add_row(kind, *(str(summary.items.get((kind, lang), 0)) for lang in languages))
    audiences = Table("audience", "subscribers", title="Subscribers")
    for audience, count in summary.audiences.items():
        audiences.add_row(audience, str(count))
    return [directory, items, audiences]


@cli.command()
@pass_context
def demo(ctx: Context) -> None:
    """Set up the data directory and load the demo: NGOs, offices, subscribers, items.

    Writes dated feeds and editorial entries under var/demo/, collects them, and shows what
    was loaded. Items are dated in this month and the last, so digests are full at once.
    Running it again updates the demo in place.

    \b
    Example:
      diffusion --home /tmp/diffusion-demo demo
      diffusion --home /tmp/diffusion-demo preview --audience ngo:ifla
    """
    settings = ctx.settings
    rules = ctx.rules  # a missing or broken rules file stops it here, before anything is made
    for folder in (settings.var_dir, settings.feeds_dir):
        folder.mkdir(parents=True, exist_ok=True)
    db.upgrade(settings.database)
    prepare_keys(ctx.runtime)
    engine = ctx.engine
    with console.status("Loading the demo dataset..."):
        summary = load_demo(engine, settings, rules=rules, now=datetime.now(UTC))
    for table in _summary_tables(summary):
        console.print(table)
    collection = summary.collection
    console.print(
        f"Collected {len(summary.sources)} demo feeds ({collection.new} new items, "
        f"{collection.updated} updated); imported {summary.entries.created} new and "
        f"{summary.entries.updated} updated editorial entries."
    )
    # The next commands must reach the same data: repeat the flags the demo was given.
    flags = click.get_current_context().find_root().params
    prefix = "diffusion" + "".join(
        f" --{name.replace('_', '-')} {shlex.quote(str(value))}"
        for name, value in flags.items()
        if value
    )
    console.print("\nNext, try:")
    for command in (
        "diffusion items list --kind ngo_action",
        "diffusion preview --audience ngo:ifla",
        "diffusion subscribers list --audience sector",
        "diffusion directory export --format csv",
    ):
        console.print(
            Text.assemble("  ", (command.replace("diffusion", prefix, 1), "bold")), soft_wrap=True
        )
