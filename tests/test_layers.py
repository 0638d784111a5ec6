"""The layers: data flows collect -> select -> render -> deliver, and nothing imports upward.

Every import of every module under diffusion/ is read with `ast` (those inside functions too:
a lazy import is still a dependency), resolved to the module it names, and held against the
rules the README's layout section states.
"""

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "diffusion"
STAGES = ("collect", "select", "render", "deliver")
# A stage may import the stages before it, never those after it.
LATER = {stage: STAGES[index + 1 :] for index, stage in enumerate(STAGES)}
# The adapters: only they import themselves (the CLI may start the web app).
ADAPTERS = {"cli": ("cli",), "web": ("cli", "web")}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the module imported, dotted
    line: int
    typing_only: bool  # under `if TYPE_CHECKING:`: not run, so no cycle at import time

    def __str__(self) -> str:
        path = self.source.replace(".", "/")
        return f"{path}.py:{self.line}: imports {self.target}"


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {
        module_name(path, package): path
        for path in sorted(package.rglob("*.py"))
        if "versions" not in path.relative_to(package).parts  # Alembic's migration scripts
    }


def _typing_blocks(tree: ast.Module) -> set[int]:
    """Line numbers inside `if TYPE_CHECKING:` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def imports(name: str, path: Path, known: set[str]) -> Iterator[Import]:
    """The modules of this package that `name` imports, each resolved to the module it names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    typing_only = _typing_blocks(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            # `from diffusion import render` imports the module diffusion.render; `from
            # diffusion.render import render_digest` imports diffusion.render itself.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("diffusion.") and target != name:
                yield Import(name, target, node.lineno, node.lineno in typing_only)


def graph(package: Path = PACKAGE) -> list[Import]:
    found = modules(package)
    edges = {edge for name, path in found.items() for edge in imports(name, path, set(found))}
    return sorted(edges, key=lambda edge: (edge.source, edge.line, edge.target))


def part(module: str) -> str:
    """The folder (stage or adapter) a module belongs to, or "" for a top-level module."""
    pieces = module.split(".")
    folders = (*STAGES, *ADAPTERS)
    return pieces[1] if len(pieces) > 2 or (len(pieces) == 2 and pieces[1] in folders) else ""


def layer_breaks(edges: list[Import]) -> list[str]:
    broken = []
    for edge in edges:
        source, target = part(edge.source), part(edge.target)
        if source in LATER and target in LATER[source]:
            broken.append(f"{edge}: {source}/ never imports a later stage ({target}/)")
        if target in ADAPTERS and source not in ADAPTERS[target]:
            broken.append(f"{edge}: nothing but {', '.join(ADAPTERS[target])} imports {target}/")
    return broken


def cycles(edges: list[Import]) -> list[list[str]]:
    """Groups of modules that import each other at import time (Tarjan's strongly connected
    components of more than one module), each as a path from its first module back to it."""
    following: dict[str, set[str]] = {}
    for edge in edges:
        if not edge.typing_only:
            following.setdefault(edge.source, set()).add(edge.target)
            following.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for after in sorted(following[node]):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(_loop(sorted(group), following))

    for node in sorted(following):
        if node not in index:
            visit(node)
    return found


def _loop(group: list[str], following: dict[str, set[str]]) -> list[str]:
    """One path through the group from its first module back to it, for the message."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for after in sorted(following[node] & members):
            if after == start:
                return [*paths[node], start]
            if after not in paths:
                paths[after] = [*paths[node], after]
                queue.append(after)
    return group


# Breaks being mended as this is written (issue 16), each named so that it cannot grow and must
# be struck here once mended (the tests below fail on a break that is no longer there, too).
KNOWN_BREAKS: set[tuple[str, str]] = set()
# Cycles by the first module of each, in sorted order.
KNOWN_CYCLES: set[str] = set()


def test_no_stage_imports_a_later_stage_or_an_adapter() -> None:
    edges = graph()
    assert len(edges) > 100  # the package was read
    known = [edge for edge in edges if (edge.source, edge.target) in KNOWN_BREAKS]
    assert layer_breaks([edge for edge in edges if edge not in known]) == []
    assert {(edge.source, edge.target) for edge in known} == KNOWN_BREAKS, "strike what is mended"


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert [" -> ".join(loop) for loop in found if loop[0] not in KNOWN_CYCLES] == []
    assert {loop[0] for loop in found} == KNOWN_CYCLES, "strike the cycles that are mended"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "diffusion" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "diffusion"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("collect/feeds.py", "from diffusion.select import rules\n", "collect/ never imports"),
        ("collect/feeds.py", "from ..render.text import wrap\n", "collect/ never imports"),
        ("select/rules.py", "def f():\n    from diffusion import render\n", "select/ never"),
        ("select/rules.py", "import diffusion.deliver.outbox\n", "select/ never imports"),
        ("render/text.py", "from diffusion.deliver import outbox\n", "render/ never imports"),
        ("deliver/outbox.py", "from diffusion.cli import output\n", "nothing but cli imports"),
        ("schedule.py", "from diffusion.web import create_app\n", "nothing but cli, web"),
    ],
)
def test_each_rule_catches_its_import(tmp_path: Path, name: str, text: str, expected: str) -> None:
    """The rules above, each broken alone in a small tree of the same shape."""
    files = {
        f"{folder}/{module}.py": ""
        for folder, module in [
            ("collect", "feeds"),
            ("select", "rules"),
            ("render", "text"),
            ("deliver", "outbox"),
            ("cli", "output"),
            ("web", "app"),
        ]
    }
    files |= {f"{folder}/__init__.py": "" for folder in (*STAGES, "cli", "web")}
    files |= {"__init__.py": "", "schedule.py": "", "render/__init__.py": ""}
    files[name] = text
    package = _tree(tmp_path, files)
    broken = layer_breaks(graph(package))
    assert len(broken) == 1 and expected in broken[0], broken
    files[name] = ""
    assert layer_breaks(graph(_tree(tmp_path, files))) == []


def test_a_cycle_is_named(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from diffusion import b\n",
            "b.py": "from diffusion.c import thing\n",
            "c.py": "import diffusion.a\n",
            "d.py": "import typing\nif typing.TYPE_CHECKING:\n    from diffusion import e\n",
            "e.py": "from diffusion import d\n",
        },
    )
    assert cycles(graph(package)) == [["diffusion.a", "diffusion.b", "diffusion.c", "diffusion.a"]]


# -- the README's layout section names every folder --------------------------------------------


def layout_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "README.md has no '## Layout' section"
    return match.group(1)


def test_readme_layout_names_every_folder_and_top_level_module() -> None:
    named = set(re.findall(r"^\s{4,}([\w.]+/|\w+\.py)\s", layout_section(), re.M))
    folders = {
        f"{path.name}/"
        for path in PACKAGE.iterdir()
        if path.is_dir() and not path.name.startswith(("_", "."))
    }
    top = {path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}
    assert sorted((folders | top) - named) == []
    # and nothing it names is gone
    gone = {
        name
        for name in named
        if name != "diffusion/" and not (PACKAGE / name).exists() and not (ROOT / name).exists()
    }
    assert sorted(gone) == []
