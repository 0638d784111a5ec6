"""The text part: wrapping by display width, breaking where Unicode line breaking allows.

Chinese (and Japanese) are written without spaces and each character takes two columns in a
terminal: `textwrap` would leave a whole paragraph on one line. Words that hold such wide
characters are cut into the units UAX #14 allows a break between (uniseg: no break before
"，" or "。", none inside a number), and widths are counted as a terminal shows them
(wcwidth). Words without wide characters (Latin, Cyrillic, Arabic, URLs) are never split.
"""

import html
import unicodedata
from collections.abc import Iterator

import nh3
from uniseg.linebreak import line_break_units
from wcwidth import wcswidth

from diffusion.personalise import BREAK, holds_placeholder


def display_width(text: str) -> int:
    """Columns `text` takes in a terminal; control characters count as nothing."""
    return sum(max(wcswidth(char), 0) for char in text)


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def pieces(word: str) -> Iterator[str]:
    """The word whole, or the units a line may break between when it holds wide characters."""
    if any(_is_wide(char) for char in word):
        yield from line_break_units(word)
    else:
        yield word


def wrap_width(text: str, width: int, indent: str = "", first: str | None = None) -> str:
    """Greedy fill to `width` columns; the first line starts with `first` (else `indent`)."""
    lines: list[str] = []
    line = indent if first is None else first
    used = display_width(line)
    has_content = False
    for word in text.split():
        for index, piece in enumerate(pieces(word)):
            space = 1 if has_content and index == 0 else 0
            needed = space + display_width(piece)
            if has_content and used + needed > width:
                lines.append(line.rstrip())
                line, used = indent, display_width(indent)
                space = 0
                needed = display_width(piece)
            line += " " * space + piece
            used += needed
            has_content = True
    if has_content:
        lines.append(line.rstrip())
    return "\n".join(lines)


TEXT_WIDTH = 72


# Unicode's directional isolates are not "printable" but carry meaning in a right-to-left title.
_BIDI_ISOLATES = frozenset("\u2066\u2067\u2068\u2069")


def subject_line(title: str) -> str:
    """A header-safe subject: no CR/LF or other control characters, runs of spaces folded."""
    kept = "".join(ch if ch.isprintable() or ch in _BIDI_ISOLATES else " " for ch in title)
    return " ".join(kept.split())


def wrap(value: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap text for a terminal by display width; URLs and long words are never split,
    Chinese is broken between characters where Unicode line breaking allows it.

    Text holding a recipient's placeholder stays on one line, its break opportunities marked:
    it is wrapped once filled (personalise.TextLine), when the value's width is known."""
    text = str(value)
    if holds_placeholder(text):
        words = (BREAK.join(pieces(word)) for word in text.split())
        return (indent if first is None else first) + " ".join(words)
    return wrap_width(text, width, indent, first)


def underline(value: str, char: str = "=", width: int = TEXT_WIDTH) -> str:
    """A heading wrapped like every other line, underlined as wide as its longest line
    (by display width: a CJK character takes two columns)."""
    heading = wrap(value, width)
    longest = max((display_width(line) for line in heading.splitlines()), default=0)
    return f"{heading}\n{char * max(longest, 3)}"


def plain(value: str) -> str:
    """Text of an HTML fragment: every tag dropped, script and style contents too."""
    return html.unescape(nh3.clean(str(value), tags=set()))


def shorten(value: str, chars: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= chars else text[: chars - 1].rsplit(" ", 1)[0] + "…"
