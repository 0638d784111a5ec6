"""Output of the listing commands: a table for people, whole values in lines for programs.

On a terminal a listing is a table that fits the width: short values (names, codes, numbers,
dates) stay on one line, free text wraps between words, and when that cannot fit every value
is shown as a block of `column  value` lines instead. A value is never cut. In a pipe (or with
`--format tsv`) it is tab-separated lines under a header, one row a line, values whole, the
way `gh` and `sqlite-utils` behave; `csv` and `json` are for files and programs.

Every value from data (names, titles, errors quoted from remote servers) reaches rich as a
`Text`, never as markup, and loses its control characters: `[/bold]` prints as typed and
`[link=...]` never becomes a link. CSV cells that a spreadsheet would run as a formula are
neutralised (OWASP: a leading `'` before `= + - @`, tab or carriage return).
"""

import csv
import io
import json
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from diffusion.rows import neutralise_formula

FORMATS = ("table", "tsv", "csv", "json")
Cell = str | int | float | bool | None | Sequence[str]
# Space between two columns of a table: the right padding and the (blank) divider.
COLUMN_GAP = 2
# A column of free text narrower than this is hard to read: below it, blocks are shown instead.
MIN_WRAP_WIDTH = 12

F = TypeVar("F", bound=Callable[..., Any])


def format_option(func: F) -> F:
    """The `--format` option of every listing command."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        help="table (default on a terminal), tsv (default in a pipe), csv or json.",
    )(func)


def resolve(fmt: str | None) -> str:
    """The format asked for, else a table on a terminal and tab-separated lines in a pipe."""
    if fmt:
        return fmt
    return "table" if sys.stdout.isatty() else "tsv"


@dataclass(frozen=True)
class Column:
    """One column of a listing and how a table may break its values over lines.

    `wrap`: free text (titles, errors, tag lists), broken between words only, so a URL stays
    on one line. `joined`: a name made of parts (`ngo:education-international|en|monthly`),
    broken after a `|`, `:` or `-`. Other values are never broken.
    """

    name: str
    wrap: bool = False
    numeric: bool = False
    joined: bool = False

    @property
    def breaks(self) -> str:
        """The characters a line may end after (a regex character class body)."""
        return r"\s|:\-" if self.joined else r"\s" if self.wrap else ""


@dataclass
class Listing:
    """What a listing command prints: columns, rows of cells, and a title for the table."""

    columns: Sequence[Column]
    rows: list[Sequence[Cell]] = field(default_factory=list)
    title: str = ""
    # What JSON gives, when richer than the cells (e.g. every stored field); default: the cells.
    records: Sequence[Mapping[str, Any]] | None = None
    row_styles: list[str | None] = field(default_factory=list)

    def add(self, *cells: Cell, style: str | None = None) -> None:
        self.rows.append(cells)
        self.row_styles.append(style)

    def as_records(self) -> list[Mapping[str, Any]]:
        if self.records is not None:
            return list(self.records)
        names = [column.name for column in self.columns]
        return [
            dict(zip(names, (_json_value(cell) for cell in row), strict=True)) for row in self.rows
        ]


def safe_text(value: object) -> str:
    """A value as one line a terminal shows as it is: control characters become spaces."""
    text = "" if value is None else str(value)
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


def plain(value: object, style: str = "") -> Text:
    """A value from data, ready for rich: a Text is never read as markup."""
    return Text(safe_text(value), style=style)


def _json_value(cell: Cell) -> Any:
    if isinstance(cell, str | int | float | bool) or cell is None:
        return cell
    return list(cell)


def _cell_text(cell: Cell, joiner: str) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    if isinstance(cell, str | int | float):
        return str(cell)
    return joiner.join(str(part) for part in cell)


def emit(listing: Listing, fmt: str | None, console: Console) -> None:
    """Print a listing in the format asked for (or the one that suits where stdout goes)."""
    chosen = resolve(fmt)
    if chosen == "json":
        click.echo(json.dumps(listing.as_records(), ensure_ascii=False, indent=2, default=str))
    elif chosen == "csv":
        click.echo(to_csv(listing), nl=False)
    elif chosen == "tsv":
        click.echo(to_tsv(listing), nl=False)
    else:
        print_table(listing, console)


def emit_sections(
    sections: Mapping[str, Listing],
    fmt: str | None,
    console: Console,
    counts: Mapping[str, int] | None = None,
) -> None:
    """Several listings (`status`): one JSON object, or the listings one after another.

    `counts` are single numbers: JSON keys, a last `name  count` block in lines, and in a
    table the caller says them in a sentence.
    """
    chosen = resolve(fmt)
    if chosen == "json":
        document: dict[str, Any] = {name: each.as_records() for name, each in sections.items()}
        document.update(counts or {})
        click.echo(json.dumps(document, ensure_ascii=False, indent=2, default=str))
        return
    blocks = list(sections.values())
    if counts and chosen != "table":
        totals = Listing([Column("count"), Column("value", numeric=True)])
        for name, number in counts.items():
            totals.add(name, number)
        blocks.append(totals)
    for number, listing in enumerate(blocks):
        if number and chosen != "table":
            click.echo("")  # a blank line between two header-and-rows blocks
        emit(listing, chosen, console)


def to_tsv(listing: Listing) -> str:
    """A header, then one line a row; cells separated by tabs, lists by `;`, values whole."""
    lines = ["\t".join(safe_text(column.name) for column in listing.columns)]
    for row in listing.rows:
        lines.append("\t".join(safe_text(_cell_text(cell, ";")) for cell in row))
    return "\n".join(lines) + "\n"


def to_csv(listing: Listing) -> str:
    """RFC 4180 CSV with a header; lists joined by `;` as the imports read them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([column.name for column in listing.columns])
    for row in listing.rows:
        writer.writerow(
            [
                neutralise_formula(_cell_text(cell, ";"))
                if isinstance(cell, str | list)
                else _cell_text(cell, ";")
                for cell in row
            ]
        )
    return out.getvalue()


# -- the terminal table -----------------------------------------------------------------------


def _words(text: str, breaks: str) -> list[str]:
    """The pieces a value may be broken into, each with the separators that end it."""
    if not breaks:
        return [text]
    pieces = re.findall(rf"[^{breaks}]*[{breaks}]+|[^{breaks}]+$", text)
    return [piece for piece in pieces if piece.strip()]


def _longest_word(text: str, breaks: str = r"\s") -> int:
    return max((cell_len(word.rstrip()) for word in _words(text, breaks)), default=0)


def wrap_cell(text: str, width: int, breaks: str = r"\s") -> str:
    """A value in lines of at most `width` cells, broken only after the `breaks` characters.

    Display width, not characters: a CJK character takes two cells. A word longer than the
    width keeps its line whole (the table's widths make that not happen).
    """
    lines: list[str] = []
    line = ""
    for word in _words(text, breaks):
        if line and cell_len((line + word).rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += word
    if line.strip():
        lines.append(line.rstrip())
    return "\n".join(lines)


def column_widths(listing: Listing, cells: list[list[str]], width: int) -> list[int] | None:
    """Widths that fit `width` with no value cut or folded mid-word, or None when none do.

    Short values keep their whole length; free-text columns share what is left, each at
    least as wide as its longest word.
    """
    count = len(listing.columns)
    room = width - COLUMN_GAP * (count - 1)
    natural = []
    floor = []
    for index, column in enumerate(listing.columns):
        values = [row[index] for row in cells]
        longest = max((cell_len(value) for value in values), default=0)
        # A header may wrap between its words (e.g. "already / sent").
        natural.append(max(longest, cell_len(column.name)))
        words = max((_longest_word(value, column.breaks) for value in values), default=0)
        if column.breaks:
            floor.append(max(words, _longest_word(column.name), min(longest, MIN_WRAP_WIDTH)))
        else:
            floor.append(max(longest, _longest_word(column.name)))
    if sum(natural) <= room:
        return natural
    if sum(floor) > room:
        return None
    widths = list(floor)
    # Share the rest among the columns that want more, the narrowest wants served first.
    spare = room - sum(widths)
    wanting = sorted(
        (index for index in range(count) if natural[index] > widths[index]),
        key=lambda index: natural[index] - widths[index],
    )
    while wanting and spare > 0:
        share = spare // len(wanting)
        if share == 0:
            break
        index = wanting.pop(0)
        extra = min(share, natural[index] - widths[index])
        widths[index] += extra
        spare -= extra
    return widths


def print_table(listing: Listing, console: Console) -> None:
    """A table that fits the terminal, else one block of `column  value` lines per row."""
    cells = [[safe_text(_cell_text(cell, ", ")) for cell in row] for row in listing.rows]
    widths = column_widths(listing, cells, console.width)
    if widths is None:
        _print_blocks(listing, cells, console)
        return
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        title=plain(listing.title) if listing.title else None,
        title_justify="left",
    )
    for column, column_width in zip(listing.columns, widths, strict=True):
        table.add_column(
            plain(column.name),
            width=column_width,
            justify="right" if column.numeric else "left",
            overflow="fold",  # never reached: the widths leave room for every word
        )
    styles = listing.row_styles or [None] * len(cells)
    for row, style in zip(cells, styles, strict=False):
        table.add_row(
            *(
                Text(wrap_cell(value, column_width, column.breaks) if column.breaks else value)
                for value, column, column_width in zip(row, listing.columns, widths, strict=True)
            ),
            style=style,
        )
    console.print(table)


def _print_blocks(listing: Listing, cells: list[list[str]], console: Console) -> None:
    """One block per row, one line per column: used when the columns cannot fit side by side."""
    if listing.title:
        console.print(plain(listing.title, "bold"))
    label = max(cell_len(column.name) for column in listing.columns) + 2
    room = max(console.width - label, MIN_WRAP_WIDTH)
    for number, row in enumerate(cells):
        if number:
            console.print()
        for column, value in zip(listing.columns, row, strict=True):
            # A word longer than the room keeps its line whole: the terminal shows it folded.
            lines = wrap_cell(value, room, column.breaks or r"\s").splitlines()
            for index, line in enumerate(lines or [""]):
                head = column.name if index == 0 else ""
                console.print(
                    Text.assemble((head.ljust(label), "bold"), line), soft_wrap=True, crop=False
                )
