"""The listing commands' output: whole values at 80 columns, in a pipe, and in every format."""

import csv
import email
import email.policy
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from feedserver import FeedServer
from rich.console import Console

from diffusion.cli import cli
from diffusion.cli.output import Column, Listing, column_widths, print_table, to_csv, to_tsv
from diffusion.rows import neutralise_formula, restore_formula

DIFFUSION = str(Path(sys.executable).parent / "diffusion")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# Columns whose values a table may break after `|`, `:` or `-` (segment names).
JOINED = {"segment"}


def _this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def _last_month() -> str:
    first = datetime.now(UTC).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with the demo loaded and this month's newsletter sent to the maildir."""
    home = tmp_path_factory.mktemp("demo")
    runner = CliRunner()
    for args in (["demo"], ["jobs", "run", "monthly", "--period", _this_month()]):
        result = runner.invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return home


FIXED_NOW = "2026-11-20T09:30:00+00:00"


def listing_commands() -> list[list[str]]:
    """Every command that lists, with the arguments that make it list something."""
    return [
        ["sources", "list"],
        ["items", "list"],
        ["subscribers", "list"],
        ["subscribers", "show", "librarian@ifla.example.org"],
        ["digest", "list"],
        # The next run of an overdue job is "now": a fixed moment keeps the two runs alike.
        ["jobs", "list", "--now", FIXED_NOW],
        ["outbox", "status"],
        ["status", "--now", FIXED_NOW],
        ["send", "--dry-run", "--period", _last_month()],
    ]


def _environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFUSION_")}
    return {**env, "DIFFUSION_HOME": str(home), **extra}


def _tsv_blocks(text: str) -> list[list[list[str]]]:
    """Tab-separated blocks (status has several, a blank line apart), each header first."""
    blocks = [block for block in text.split("\n\n") if block.strip()]
    return [[line.split("\t") for line in block.splitlines()] for block in blocks]


def _as_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ";".join(map(str, value))
    return str(value)


def _check_against_json(block: list[list[str]], records: list[dict[str, object]]) -> None:
    header, rows = block[0], block[1:]
    assert len(rows) == len(records)
    assert all(len(row) == len(header) for row in rows), "a value holds a tab or is lost"
    for row, record in zip(rows, records, strict=True):
        shared = [name for name in header if not isinstance(record.get(name, {}), dict)]
        assert shared, (header, list(record))
        for name in shared:
            assert row[header.index(name)] == _as_cell(record[name]), name


@pytest.mark.parametrize("command", listing_commands(), ids=" ".join)
def test_through_a_pipe_at_80_columns_every_value_is_whole(
    demo_home: Path, command: list[str]
) -> None:
    runner = CliRunner()  # its stdout is not a terminal: the default is tsv
    base = ["--home", str(demo_home)]
    piped = runner.invoke(cli, [*base, *command], env={"COLUMNS": "80"}, catch_exceptions=False)
    assert piped.exit_code == 0, piped.output
    assert piped.stdout == runner.invoke(cli, [*base, *command, "--format", "tsv"]).stdout
    assert "…" not in piped.stdout and "─" not in piped.stdout and "┃" not in piped.stdout
    dumped = json.loads(runner.invoke(cli, [*base, *command, "--format", "json"]).stdout)
    blocks = _tsv_blocks(piped.stdout)
    if command[0] == "status":
        assert [block[0][0] for block in blocks] == ["source", "job", "state", "count"]
        for block, name in zip(blocks, ("sources", "jobs", "outbox"), strict=False):
            _check_against_json(block, dumped[name])
        assert blocks[3][1] == ["drafts", str(dumped["drafts"])]
    elif command[:2] == ["subscribers", "show"]:
        assert [block[0][0] for block in blocks] == ["email", "audience"]
        for block, name in zip(blocks, ("person", "subscriptions"), strict=True):
            _check_against_json(block, dumped[name])
        assert blocks[0][1][0] == command[2] and blocks[1][1][:2] == ["ngo", "ifla"]
    else:
        assert len(blocks) == 1
        assert len(blocks[0]) > 1, f"{command}: nothing listed"
        _check_against_json(blocks[0], dumped)


def _run_in_terminal(args: list[str], home: Path, columns: int = 80, code: int = 0) -> str:
    """What a real terminal of `columns` columns shows for the command (ANSI codes removed)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = _environment(home, COLUMNS=str(columns), LINES="50", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [DIFFUSION, *args], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == code, b"".join(chunks).decode(errors="replace")
    return ANSI.sub("", b"".join(chunks).decode().replace("\r\n", "\n"))


@pytest.mark.parametrize("command", listing_commands(), ids=" ".join)
def test_in_an_80_column_terminal_no_value_is_cut(demo_home: Path, command: list[str]) -> None:
    limit = ["--limit", "50"] if command[0] == "items" else []  # what a table shows at most
    piped = CliRunner().invoke(cli, ["--home", str(demo_home), *command, *limit, "--format", "tsv"])
    shown = _run_in_terminal(command, demo_home)
    assert "…" not in shown
    lines = shown.splitlines()
    for block in _tsv_blocks(piped.stdout):
        header, rows = block[0], block[1:]
        if header == ["count", "value"]:
            continue  # status says its counts in a sentence
        for row in rows:
            for name, value in zip(header, row, strict=True):
                # A table may break a value between words (segments after | : -), never inside one.
                pattern = r"[\s|:-]+" if name in JOINED else r"\s+"
                for piece in re.split(pattern, value.replace(";", " ").replace(",", " ")):
                    assert piece in shown, f"{command}: {name} {value!r}: {piece!r} cut"
    for line in lines:
        # Only a block line holding one word wider than the screen may go past it.
        assert len(line) <= 80 or len(line.split()) <= 2, line


def test_outbox_status_through_grep_finds_the_ifla_editions(demo_home: Path) -> None:
    found = subprocess.run(
        f"{DIFFUSION} outbox status | grep ifla",
        shell=True,
        capture_output=True,
        text=True,
        env=_environment(demo_home, COLUMNS="80"),
        check=True,
    )
    segments = sorted(line.split("\t")[-1] for line in found.stdout.splitlines())
    assert segments == ["ngo:ifla|en|monthly", "ngo:ifla|fr|monthly"]


# -- the helper itself -------------------------------------------------------------------------


def _listing() -> Listing:
    listing = Listing(
        [Column("name"), Column("segment", joined=True), Column("title", wrap=True)],
        title="t",
    )
    listing.add("demo-education-international", "national_commission:BD|fr|monthly", "x " * 30)
    listing.add("ifla", "ngo:ifla|en|monthly", "https://example.org/abc")
    return listing


def test_a_table_keeps_every_word_whole_or_shows_blocks() -> None:
    listing = _listing()
    cells = [[str(cell) for cell in row] for row in listing.rows]
    widths = column_widths(listing, cells, 80)
    assert widths is not None
    assert widths[0] == len("demo-education-international")  # short values never wrap
    assert widths[1] >= len("national_commission:")  # a segment breaks after : or |
    assert widths[2] >= len("https://example.org/abc")  # a URL stays on a line
    out = io.StringIO()
    print_table(listing, Console(file=out, width=80))
    assert "national_commission:" in out.getvalue() and "BD|fr|monthly" in out.getvalue()
    assert column_widths(listing, cells, 60) is None  # too narrow: blocks instead
    out = io.StringIO()
    print_table(listing, Console(file=out, width=60))
    assert "name     demo-education-international" in out.getvalue()
    assert "segment  national_commission:BD|fr|monthly" in out.getvalue()


def test_data_cannot_style_the_terminal_or_break_a_line() -> None:
    listing = Listing([Column("name"), Column("note", wrap=True)])
    listing.add("[/bold] [link=https://evil.example]x[/link]", "\x1b[31mred\x1b]8;;https://e\x07")
    out = io.StringIO()
    print_table(listing, Console(file=out, width=80, force_terminal=True))
    shown = out.getvalue()
    assert "[/bold] [link=https://evil.example]x[/link]" in shown
    assert "\x1b[31m" not in shown and "\x1b]8" not in shown
    tsv = to_tsv(Listing([Column("a"), Column("b")], [["x\ty\nz", "ok"]]))
    assert tsv == "a\tb\nx y z\tok\n"


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    listing = Listing([Column("name"), Column("count")])
    for value in ('=HYPERLINK("http://evil")', "+1", "-1", "@SUM(A1)", "\tx", "plain"):
        listing.add(value, -3)
    rows = list(csv.reader(io.StringIO(to_csv(listing))))[1:]
    assert [row[0] for row in rows] == [
        '\'=HYPERLINK("http://evil")',
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tx",
        "plain",
    ]
    assert {row[1] for row in rows} == {"-3"}  # our own numbers are numbers
    for value in ("=1", "'=1", "plain", "'quoted"):
        assert restore_formula(neutralise_formula(value)) == value


# -- markup and formulas from data, through the commands -----------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "init"])
    assert result.exit_code == 0, result.output
    return tmp_path


MARKUP = "[/bold][link=https://evil.example/]click[/link]"


def test_markup_in_names_and_remote_errors_prints_as_typed(home: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(home)]

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, [*base, *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    run("subscribers", "add", "a@example.org", "--audience", "public", "--name", MARKUP)
    assert MARKUP in run("subscribers", "list", "--format", "table")
    with FeedServer() as server:
        url = server.route("/feed.xml", b"", status=500, reason=MARKUP)
        run("sources", "add", url, "--kind", "event", "--name", MARKUP)
        # Exit 1: the only source failed, so nothing could be collected.
        assert MARKUP in run("collect", "--format", "table", code=1)
        # A terminal also shows the progress bar, whose description is the source's name.
        assert MARKUP in _run_in_terminal(["collect"], home, code=1)
    assert MARKUP in run("sources", "list", "--format", "table")
    assert MARKUP in run("status", "--format", "table")
    shown = _run_in_terminal(["sources", "list"], home)
    assert MARKUP in " ".join(shown.split())


def test_subscribers_csv_export_neutralises_formulas_and_imports_back(home: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(home)]
    name = '=HYPERLINK("https://evil.example/","x")'
    added = runner.invoke(
        cli, [*base, "subscribers", "add", "b@example.org", "--audience", "public", "--name", name]
    )
    assert added.exit_code == 0, added.output
    exported = runner.invoke(cli, [*base, "subscribers", "list", "--format", "csv"]).stdout
    row = next(csv.DictReader(io.StringIO(exported)))
    assert row["name"] == "'" + name
    assert list(row)[-1] == "status" and row["status"] == "active"
    # A row that is not active in the export (here one who unsubscribed) is not made active.
    left = exported.splitlines()[1].replace("b@example.org", "left@example.org")
    (home / "export.csv").write_text(
        exported + left.rsplit(",", 1)[0] + ",unsubscribed\n", encoding="utf-8"
    )
    # Into a fresh home (as when moving servers), so every value comes from the file.
    other = home / "other"
    assert runner.invoke(cli, ["--home", str(other), "init"]).exit_code == 0
    base = ["--home", str(other)]
    imported = runner.invoke(cli, [*base, "subscribers", "import", str(home / "export.csv")])
    assert imported.exit_code == 0, imported.output
    assert "1 subscriptions created" in imported.output and "1 skipped" in imported.output
    assert "export.csv:3: status unsubscribed, not imported" in imported.output
    again = json.loads(
        runner.invoke(cli, [*base, "subscribers", "list", "--format", "json"]).stdout
    )
    assert [entry["name"] for entry in again] == [name]


# -- conventions: -o -, --open, exit codes ------------------------------------------------------


def test_dash_o_dash_is_standard_output(demo_home: Path, tmp_path: Path) -> None:
    preview = subprocess.run(
        [DIFFUSION, "preview", "--audience", "public", "--format", "eml", "-o", "-"],
        capture_output=True,
        env=_environment(demo_home),
        cwd=tmp_path,
        check=True,
    )
    message = email.message_from_bytes(preview.stdout, policy=email.policy.default)
    assert message["Subject"] and message.is_multipart()
    exported = subprocess.run(
        [DIFFUSION, "directory", "export", "--format", "csv", "-o", "-"],
        capture_output=True,
        text=True,
        env=_environment(demo_home),
        cwd=tmp_path,
        check=True,
    )
    assert exported.stdout.startswith("slug,")
    person = subprocess.run(
        [DIFFUSION, "subscribers", "export-person", "librarian@ifla.example.org", "-o", "-"],
        capture_output=True,
        text=True,
        env=_environment(demo_home),
        cwd=tmp_path,
        check=True,
    )
    assert json.loads(person.stdout)["email"] == "librarian@ifla.example.org"
    assert person.stderr == ""
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["preview", "--audience", "public", "-o"],
        ["directory", "export", "-o"],
        ["subscribers", "export-person", "librarian@ifla.example.org", "-o"],
    ],
)
def test_an_unwritable_output_is_one_line_and_exit_2(
    demo_home: Path, tmp_path: Path, args: list[str]
) -> None:
    for target in (tmp_path / "missing" / "x.out", tmp_path):
        done = subprocess.run(
            [DIFFUSION, *args, str(target)],
            capture_output=True,
            text=True,
            env=_environment(demo_home),
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert str(target) in done.stderr and "Traceback" not in done.stderr


def test_open_prints_only_the_path_it_opened(demo_home: Path, tmp_path: Path) -> None:
    record = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {record}\n')
    browser.chmod(0o755)
    done = subprocess.run(
        [DIFFUSION, "preview", "--audience", "public", "--format", "html", "--open"],
        capture_output=True,
        text=True,
        env=_environment(demo_home, BROWSER=str(browser)),
        check=True,
    )
    opened = Path(done.stdout.strip())
    assert done.stdout == f"{opened}\n" and opened.is_file()
    assert record.read_text().strip() == opened.as_uri()


@pytest.fixture
def empty_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "empty"
    home.mkdir()
    yield home


def _main(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DIFFUSION, *args],
        capture_output=True,
        text=True,
        env=_environment(home, **env),
        cwd=home,
        check=False,
    )


def test_no_command_creates_anything_before_init(empty_home: Path) -> None:
    for args in (
        ["sources", "list"],
        ["status"],
        ["digest", "list"],
        ["outbox", "status"],
        ["subscribers", "list"],
        ["preview", "--audience", "public"],
        ["collect"],
    ):
        done = _main(empty_home, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "diffusion init" in done.stderr and len(done.stderr.splitlines()) == 1
        assert list(empty_home.iterdir()) == [], args
    assert _main(empty_home, "init").returncode == 0
    assert (empty_home / "var" / "diffusion.db").is_file()


def test_a_broken_settings_file_is_one_line_with_file_line_and_column(empty_home: Path) -> None:
    config = empty_home / "diffusion.toml"
    config.write_text('timezone = "Europe/Paris"\nlanguages = ["en" "fr"]\n')
    done = _main(empty_home, "status")
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {config}:2:19: not valid TOML")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    config.write_text('title = "x"\nlanguages = [\n')
    assert f"{config}:2:14: not valid TOML" in _main(empty_home, "status").stderr


def test_a_bad_setting_names_its_file_or_variable_and_key(empty_home: Path) -> None:
    config = empty_home / "diffusion.toml"
    config.write_text('timezone = "Mars/Olympus"\n')
    done = _main(empty_home, "status")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {config}: timezone: unknown time zone 'Mars/Olympus'")
    config.write_text("web_port = 99999\n")
    assert f"{config}: web_port: Input should be less than" in _main(empty_home, "status").stderr
    config.unlink()
    done = _main(empty_home, "status", DIFFUSION_DEFAULT_LANGUAGE="de")
    assert done.stderr.startswith(
        "error: environment variable DIFFUSION_DEFAULT_LANGUAGE: default_language: 'de' is not"
    )
    done = _main(empty_home, "status", DIFFUSION_DATABASE_URL="not a url")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(
        "error: environment variable DIFFUSION_DATABASE_URL: database_url:"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["digest", "list", "--period", "2026-13"], "'2026-13'"),
        (["digest", "build", "--period", "2026-W54"], "no such ISO week"),
        (["send", "--dry-run", "--period", "November"], "'November'"),
        (["preview", "-a", "public", "--period", "2026-1"], "'2026-1'"),
        (["digest", "approve", "--all", "--period", "26-11"], "'26-11'"),
        (["jobs", "run", "monthly", "--period", "2026-W47"], "is a week"),
        (["jobs", "run", "weekly", "--period", "2026-11"], "is a month"),
    ],
)
def test_periods_are_checked_by_every_command_that_takes_one(
    demo_home: Path, args: list[str], says: str
) -> None:
    before = CliRunner().invoke(
        cli, ["--home", str(demo_home), "digest", "list", "--format", "json"]
    )
    done = _main(demo_home, *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and len(done.stderr.splitlines()) == 1
    after = CliRunner().invoke(
        cli, ["--home", str(demo_home), "digest", "list", "--format", "json"]
    )
    assert after.stdout == before.stdout  # nothing was built or sent


def test_directory_csv_export_neutralises_formulas_and_imports_back(home: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(home)]
    source = home / "ngos.csv"
    source.write_text(
        "slug,name,acronym,sectors,countries,partnership_status\n"
        'evil,"=HYPERLINK(""https://evil.example/"",""x"")",@SUM,ED,FR,consultative\n',
        encoding="utf-8",
    )
    assert runner.invoke(cli, [*base, "directory", "import", str(source)]).exit_code == 0
    exported = runner.invoke(cli, [*base, "directory", "export", "--format", "csv"]).stdout
    row = next(csv.DictReader(io.StringIO(exported)))
    assert row["name"] == '\'=HYPERLINK("https://evil.example/","x")'
    assert row["acronym"] == "'@SUM"
    again = home / "again.csv"
    again.write_text(exported, encoding="utf-8")
    reimported = runner.invoke(cli, [*base, "directory", "import", str(again)])
    assert reimported.exit_code == 0 and "1 unchanged" in reimported.output, reimported.output
