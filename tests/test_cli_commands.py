"""Every command of the click tree: help with an example, `--format` where it lists, usage errors.

The tree is walked, so a new command is checked without being named here; only the list of
commands that list things is written down, because listing is what they do, not how they look.
"""

import re
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from diffusion.cli import cli, main
from diffusion.cli.output import FORMATS

# The commands that print rows: each takes --format table|tsv|csv|json.
LISTING = {
    "collect",
    "sources list",
    "items list",
    "subscribers list",
    "subscribers show",
    "digest build",
    "digest list",
    "jobs list",
    "outbox status",
    "status",
    "send",
}


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = [(path, command) for path, command in walk(cli) if path]
LEAVES = [(path, command) for path, command in COMMANDS if not isinstance(command, click.Group)]


def _id(entry: tuple[tuple[str, ...], click.Command]) -> str:
    return " ".join(entry[0])


def test_the_tree_is_walked() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    assert LISTING <= names  # a renamed listing command must be renamed here too
    assert {"init", "preview", "serve", "subscribers import", "feeds build"} <= names


@pytest.mark.parametrize("entry", COMMANDS, ids=_id)
def test_every_command_has_help_and_every_leaf_an_example(
    entry: tuple[tuple[str, ...], click.Command],
) -> None:
    path, command = entry
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert command.help and command.help.strip(), path
    if isinstance(command, click.Group):
        return
    example = result.output.split("Example:", 1)
    assert len(example) == 2, f"{' '.join(path)}: no Example: in its help"
    # The example runs this very command, perhaps after global options (--home DIR).
    pattern = r"diffusion(?: --?\S+(?: [^-\s]\S*)?)* " + re.escape(" ".join(path)) + r"\b"
    assert re.search(pattern, example[1]), f"{' '.join(path)}: the example runs another command"


@pytest.mark.parametrize("entry", LEAVES, ids=_id)
def test_commands_that_list_take_every_format(entry: tuple[tuple[str, ...], click.Command]) -> None:
    path, command = entry
    options = {name: param for param in command.params for name in param.opts}
    if " ".join(path) not in LISTING:
        return
    fmt = options.get("--format")
    assert isinstance(fmt, click.Option) and isinstance(fmt.type, click.Choice), path
    assert tuple(fmt.type.choices) == FORMATS
    assert "tsv (default in a pipe)" in (fmt.help or "")


@pytest.mark.parametrize("entry", LEAVES, ids=_id)
def test_a_bad_argument_is_exit_2_and_one_line(
    entry: tuple[tuple[str, ...], click.Command],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = entry
    for wrong in (["--no-such-option"], ["--format", "yaml-ish"]):
        monkeypatch.setattr(sys, "argv", ["diffusion", *path, *wrong])
        with pytest.raises(SystemExit) as stopped:
            main()
        captured = capsys.readouterr()
        assert stopped.value.code == 2, captured.err
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
        assert f"diffusion {' '.join(path)} --help" in lines[0]
