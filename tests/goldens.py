"""Golden files: Diffusion's own output compared with a file under tests/golden, as a diff.

Regenerate them after a deliberate change with `pytest --regenerate-golden` or
`DIFFUSION_REGENERATE_GOLDEN=1` (see tests/golden/README.md), then read `git diff tests/golden`.
"""

import difflib
import os
import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent / "golden"
# Read at import: the autouse fixture of conftest.py clears DIFFUSION_* variables for each test.
# conftest.py's pytest_configure sets it from --regenerate-golden too.
REGENERATE = os.environ.get("DIFFUSION_REGENERATE_GOLDEN") == "1"
# The diff of a failure stops after this many lines: enough to see what changed.
DIFF_LINES = 120
LINE = 240  # and each line of it after this many characters
SIGNED = re.compile(r"/(unsubscribe|preferences)/[A-Za-z0-9_.-]+")


def check(path: Path, actual: str | bytes) -> None:
    """Fail with a unified diff when `actual` differs from the golden file at `path`.

    A missing golden is written and the test fails, so that a new one is read before it is
    committed; with regeneration on, every golden is rewritten and the test passes.
    """
    produced = actual if isinstance(actual, bytes) else actual.encode("utf-8")
    if REGENERATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(produced)
        if not REGENERATE:
            pytest.fail(f"{path} did not exist and was written: read it, then commit it")
        return
    expected = path.read_bytes()
    if produced == expected:
        return
    diff = list(
        difflib.unified_diff(
            expected.decode("utf-8", "replace").splitlines(),
            produced.decode("utf-8", "replace").splitlines(),
            fromfile=f"{path.relative_to(ROOT.parent.parent)} (golden)",
            tofile="produced now",
            lineterm="",
        )
    )
    if not diff:  # the same lines: only line endings or the final newline differ
        diff = [f"same lines, other line endings: {expected[-40:]!r} != {produced[-40:]!r}"]
    shown = [line if len(line) <= LINE else line[:LINE] + " [...]" for line in diff[:DIFF_LINES]]
    if len(diff) > DIFF_LINES:
        shown.append(f"... {len(diff) - DIFF_LINES} more lines of diff")
    pytest.fail(
        f"{path.name} differs from its golden file. If the change is intended, run "
        "pytest --regenerate-golden and read git diff tests/golden.\n" + "\n".join(shown),
        pytrace=False,
    )


def without_signatures(text: str) -> str:
    """Signed links carry the time they were made: the token becomes TOKEN."""
    return SIGNED.sub(r"/\1/TOKEN", text)


def normalise_eml(data: bytes) -> str:
    """A message as its headers and decoded parts, with what changes at every send replaced.

    Message-ID, Date, the MIME boundary and signed tokens are replaced by names. The HTML part
    is compiled by mjml-python: its golden is the MJML source, so here it is only named;
    tests/test_render.py's smoke test reads the compiled HTML.
    """
    message = BytesParser(policy=policy.default).parsebytes(data)
    lines = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if part.is_multipart():
            continue
        encoding = part["Content-Transfer-Encoding"]
        lines += ["", f"--- {part.get_content_type()} ({encoding})"]
        if part.get_content_type() == "text/html":
            lines.append("(compiled from the MJML golden; see the smoke test of compiled HTML)")
        else:
            lines.append(part.get_content())
    text = "\n".join(lines).replace("\r\n", "\n")
    boundary = message.get_boundary()
    if boundary is not None:
        text = text.replace(boundary, "BOUNDARY")
    text = re.sub(r"^Message-ID: <[^>]+>$", "Message-ID: <MESSAGE-ID>", text, flags=re.M)
    text = re.sub(r"^Date: .+$", "Date: DATE", text, flags=re.M)
    return without_signatures(text)
