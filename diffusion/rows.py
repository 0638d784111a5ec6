"""Rows from files: one reader for every import (CSV, and YAML lists), reporting FILE:LINE.

Every import (sources, subscribers, directories) reads its file here, so that they agree:
- a file that cannot be read, is not UTF-8, or lacks a required column is refused whole, in one
  line naming the file (and the line, for bad bytes) and what to do;
- an unknown column (or YAML field) is a one-line warning naming the file, the column and the
  known columns; it is ignored and the rest of the file is imported, as a spreadsheet exported
  from another tool often carries columns of its own;
- a bad row is one line `FILE:LINE: what is wrong` and is left out; the good rows are kept.
"""

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from diffusion.errors import InvalidInput


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
    # What was read but ignored (unknown columns), as FILE:LINE: what; not a failure.
    warnings: list[str] = field(default_factory=list)

    def _where(self, line: int | None) -> str:
        return f"{self.source}:{line}" if line is not None else self.source

    def skip(self, line: int | None, reason: str) -> None:
        """Record a row that was read but deliberately not applied."""
        self.skipped.append(f"{self._where(line)}: {reason}")

    def problem(self, line: int | None, reason: str) -> None:
        """Record a bad row; `line` is the 1-based line in the file (header is line 1 in CSV)."""
        self.problems.append(f"{self._where(line)}: {reason}")

    def warn(self, line: int | None, what: str) -> None:
        """Record something read and ignored, such as an unknown column."""
        self.warnings.append(f"{self._where(line)}: {what}")

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


@dataclass(frozen=True)
class Columns:
    """The columns a file of one kind has: those it must have, then those it may have."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def known(self) -> tuple[str, ...]:
        return self.required + self.optional

    def expected(self) -> str:
        optional = f" and optionally {', '.join(self.optional)}" if self.optional else ""
        return f"expected {', '.join(self.required) or 'no required column'}{optional}"

    def unknown(self, names: Sequence[str]) -> list[str]:
        return [name for name in names if name not in self.known]

    def warn_unknown(
        self, report: ImportReport, line: int, names: Sequence[str], what: str = "column"
    ) -> list[str]:
        """One warning naming the unknown columns (or fields) and the known ones; returns them."""
        unknown = self.unknown(names)
        if unknown:
            report.warn(
                line,
                f"unknown {what}(s) {', '.join(unknown)} ignored; "
                f"known {what}s: {', '.join(self.known)}",
            )
        return unknown


def read_text(path: Path) -> str:
    """The file's text (UTF-8, with or without a byte-order mark), or InvalidInput saying why."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(
            f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x}); save it as UTF-8"
        ) from exc


class CsvFile:
    """A CSV file read as text, its header (stripped, lower-cased) known before its rows."""

    def __init__(self, path: Path, text: str | None = None) -> None:
        self.path = path
        self._reader = csv.DictReader(io.StringIO(read_text(path) if text is None else text))
        try:
            names = self._reader.fieldnames or []
        except csv.Error as exc:
            raise InvalidInput(f"{path}:1: not readable as CSV: {exc}") from exc
        self.header = [name.strip().lower() for name in names]
        if not any(self.header):
            raise InvalidInput(f"{path}:1: empty file; expected a header line")
        self._reader.fieldnames = self.header

    def rows(self, columns: Columns, report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
        """(line, cells) for each row that is not blank: `line` is where the row starts, cells
        are stripped, unknown columns left out (warned once), a neutralised formula restored.

        Missing required columns refuse the file; a row with more cells than the header has
        columns is a bad row (an unquoted comma shifted its cells), reported and left out.
        """
        missing = [name for name in columns.required if name not in self.header]
        if missing:
            raise InvalidInput(
                f"{self.path}:1: missing column(s) {', '.join(missing)}; {columns.expected()}"
            )
        columns.warn_unknown(report, 1, [name for name in self.header if name])
        # Checked now, not at the first row: a generator would check only when first read.
        return self._rows([name for name in self.header if name in columns.known], report)

    def _rows(self, known: list[str], report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
        reader = self._reader
        try:
            for read in reader:
                row: dict[Any, Any] = dict(read)
                # Cells beyond the header's columns, which DictReader keeps under None.
                extra: list[str] = list(row.pop(None, None) or [])
                cells = [value for value in row.values() if isinstance(value, str)] + extra
                # The reader knows only the line a row ends on; a quoted cell may hold breaks.
                line = reader.line_num - sum(cell.count("\n") for cell in cells)
                if extra:
                    report.problem(
                        line,
                        f"{len(self.header) + len(extra)} cells, but the header names "
                        f"{len(self.header)} columns; quote a value that holds a comma",
                    )
                    continue
                values = {name: restore_formula((row.get(name) or "").strip()) for name in known}
                if any(values.values()):
                    yield line, values
        except csv.Error as exc:
            report.problem(reader.line_num, f"not readable as CSV: {exc}")


def csv_rows(
    path: Path, columns: Columns, report: ImportReport
) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV file of one kind, its header checked at once: see CsvFile.rows."""
    return CsvFile(path).rows(columns, report)


def yaml_rows(
    path: Path, sections: Mapping[str, Columns], report: ImportReport, only: str | None = None
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(section, line, fields) for each entry of a YAML file of lists: a mapping of sections
    (named in `sections`) to lists, or, given `only`, a bare list of that section.

    An entry that is not a mapping is a bad row; unknown fields are warned of and left out.
    """
    text = read_text(path)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    finally:
        loader.dispose()
    if root is None:
        return
    names = ", ".join(sections)
    if isinstance(root, yaml.SequenceNode):
        if not only:
            raise InvalidInput(f"{path}: a YAML list needs --kind ({'|'.join(sections)})")
        lists: list[tuple[str, yaml.Node, Any]] = [(only, root, data)]
    elif isinstance(root, yaml.MappingNode) and isinstance(data, dict):
        lists = []
        for key_node, value_node in root.value:
            name = str(key_node.value)
            if name not in sections:
                raise InvalidInput(
                    f"{path}:{key_node.start_mark.line + 1}: unknown section {name!r}; "
                    f"expected {names}"
                )
            if not only or name == only:
                lists.append((name, value_node, data[name]))
    else:
        raise InvalidInput(f"{path}: expected sections {names} at the top level")
    for name, node, values in lists:
        if values is None:
            continue
        if not isinstance(node, yaml.SequenceNode) or not isinstance(values, list):
            raise InvalidInput(f"{path}:{node.start_mark.line + 1}: {name} must be a list")
        columns = sections[name]
        warned: set[str] = set()  # each unknown field once, at its first entry
        for entry_node, entry in zip(node.value, values, strict=True):
            line = entry_node.start_mark.line + 1
            if not isinstance(entry, dict):
                report.problem(line, f"{name}: expected a mapping of fields, got {entry!r}")
                continue
            fields = {str(key): value for key, value in entry.items()}
            fresh = [key for key in columns.unknown(list(fields)) if key not in warned]
            warned.update(columns.warn_unknown(report, line, fresh, f"{name} field"))
            yield name, line, {k: v for k, v in fields.items() if k in columns.known}
