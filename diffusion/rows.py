"""What an import says back: how many rows went in, and each bad row as FILE:LINE: reason."""

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ImportReport:
    """The outcome of importing one file: good rows are kept, bad rows are listed."""

    source: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)
    # Good rows left out on purpose (e.g. suppressed addresses), as FILE:LINE: reason.
    skipped: list[str] = field(default_factory=list)

    def skip(self, line: int | None, reason: str) -> None:
        """Record a row that was read but deliberately not applied."""
        where = f"{self.source}:{line}" if line is not None else self.source
        self.skipped.append(f"{where}: {reason}")

    def problem(self, line: int | None, reason: str) -> None:
        """Record a bad row; `line` is the 1-based line in the file (header is line 1 in CSV)."""
        where = f"{self.source}:{line}" if line is not None else self.source
        self.problems.append(f"{where}: {reason}")

    def count(self, outcome: str) -> None:
        """Count a good row by what became of it: "created", "updated" or "unchanged"."""
        if outcome not in ("created", "updated", "unchanged"):
            raise ValueError(f"outcome {outcome!r}: expected created, updated or unchanged")
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def ok(self) -> bool:
        return not self.problems


# A spreadsheet runs a cell starting with one of these as a formula (OWASP CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: str) -> str:
    """A CSV cell that a spreadsheet shows as text instead of running it: `'` in front.

    A value that already starts with quotes before such a character gets one more, so that
    `restore_formula` can tell them apart.
    """
    return "'" + value if value.lstrip("'").startswith(FORMULA_STARTS) else value


def restore_formula(value: str) -> str:
    """The value `neutralise_formula` was given: our CSV exports import back unchanged."""
    neutralised = value.startswith("'") and value.lstrip("'").startswith(FORMULA_STARTS)
    return value[1:] if neutralised else value


def csv_rows(reader: "csv.DictReader[str]") -> Iterator[tuple[int, dict[Any, Any]]]:
    """(line, row) for each row of a CSV file, `line` being where the row starts.

    The reader knows only the line a row ends on, and a quoted cell may hold line breaks:
    count them back, so that a message points at the row the editor will look for. Cells
    that an export neutralised against formula injection get their value back.
    """
    for row in reader:
        cells = [value for value in row.values() if isinstance(value, str)]
        cells += [value for value in row.get(None) or [] if isinstance(value, str)]
        line = reader.line_num - sum(cell.count("\n") for cell in cells)
        yield (
            line,
            {
                key: restore_formula(value) if isinstance(value, str) else value
                for key, value in row.items()
            },
        )
