"""Per-recipient placeholders: rendered once per segment, filled in per recipient."""

import html
import re
import unicodedata
from collections.abc import Mapping

from wcwidth import wcswidth, wcwidth

from diffusion import i18n
from diffusion.contracts import RenderedEdition

# Plain ASCII with no characters that quoted-printable, HTML escaping or line folding change,
# so a placeholder survives rendering and can be replaced in the final bytes.
FIELDS = ("greeting", "name", "email", "unsubscribe_url", "preferences_url")
_PATTERN = re.compile(r"\[\[diffusion:([a-z_]+)\]\]")


def placeholder(field: str) -> str:
    """The marker a template writes where a recipient's value goes."""
    if field not in FIELDS:
        raise ValueError(f"unknown personalisation field {field!r}; expected one of {FIELDS}")
    return f"[[diffusion:{field}]]"


def holds_placeholder(text: str) -> bool:
    """Whether `text` holds a recipient's placeholder."""
    return _PATTERN.search(text) is not None


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder with the recipient's value (already escaped for the context)."""
    return _PATTERN.sub(lambda match: values[match.group(1)], template)


def greeting(language: str, name: str) -> str:
    """The salutation at the top of an email: "Dear Ana," / "Bonjour Ana,"; a name of the
    other direction is isolated, so "Ana Sample" does not pull the Arabic comma to its side."""
    words = i18n.words(language)
    name = " ".join(name.split())
    if name:
        shown = i18n.isolate(name) if i18n.direction(language) == "rtl" else name
        return words.gettext("Dear %(name)s,", name=shown)
    return words.gettext("Dear reader,")


def personalise(rendered: RenderedEdition, values: Mapping[str, str]) -> tuple[str, str]:
    """The HTML and text of one recipient's copy: placeholders filled, escaped for HTML."""
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    return fill(rendered.html, escaped), fill_text(rendered.text, values)


# -- the text part's personal lines -------------------------------------------------------------
# A line of the text part that holds a placeholder cannot be wrapped when the edition is rendered:
# "[[diffusion:email]]" is 19 columns, an address 40, a name anything. The renderer leaves such a
# paragraph on one line, marking with BREAK where it may break without a space (between Chinese
# characters, as UAX #14 allows); each recipient's copy lays it out once filled. Only the filled
# line's words are measured then: the constant text was cut into pieces once, by the renderer.
TEXT_WIDTH = 72
BREAK = "\u200b"  # ZERO WIDTH SPACE: a break opportunity, never left in a filled line
_PREFIX = re.compile(r" *(?:[*-] )?")  # the indent, or a bullet, that continuation lines align to
# No line starts with these: a cut between Chinese characters keeps them with the one before.
_NO_BREAK_BEFORE = frozenset("，。、：；！？）」』】》〉,.:;!?)")


def text_width(text: str) -> int:
    """Columns `text` takes in a terminal (a CJK character takes two; controls none)."""
    width = wcswidth(text)
    return width if width >= 0 else sum(max(wcwidth(char), 0) for char in text)


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _cut(piece: str) -> list[str]:
    """A piece too wide for a line (a long Chinese name) as its characters, punctuation kept
    with the character before it."""
    units: list[str] = []
    for char in piece:
        if units and (char in _NO_BREAK_BEFORE or not (_wide(char) or _wide(units[-1][-1]))):
            units[-1] += char
        else:
            units.append(char)
    return units


def lay_out(line: str, width: int = TEXT_WIDTH) -> str:
    """A filled line wrapped to `width` columns at its spaces and BREAK marks; a URL or any
    word without wide characters stays whole, as the renderer's wrapping keeps it."""
    prefix = _PREFIX.match(line).group(0)  # type: ignore[union-attr]
    indent = " " * len(prefix)
    measure = len if line.isascii() else text_width  # one column a character, in ASCII
    lines: list[str] = []
    current, used, has_content = prefix, len(prefix), False
    for word in line[len(prefix) :].split():
        for index, piece in enumerate(word.split(BREAK) if BREAK in word else (word,)):
            if not piece:
                continue
            piece_width = measure(piece)
            units = [piece]
            if piece_width > width - len(indent) and any(_wide(char) for char in piece):
                units = _cut(piece)  # a Chinese name wider than a line
            for unit_index, unit in enumerate(units):
                unit_width = piece_width if len(units) == 1 else text_width(unit)
                space = 1 if has_content and index == 0 and unit_index == 0 else 0
                if has_content and used + space + unit_width > width:
                    lines.append(current)
                    current, used, space = indent, len(indent), 0
                current += " " * space + unit
                used += space + unit_width
                has_content = True
    lines.append(current)
    return "\n".join(lines)


def _breaks(start: int, lengths: list[int], width: int) -> list[int]:
    """Where each line begins, in a line of ASCII words of these lengths after `start` columns:
    the same greedy fill as `lay_out`."""
    breaks, used = [0], start
    for index, length in enumerate(lengths):
        if index == breaks[-1]:
            used += length
        elif used + 1 + length > width:
            breaks.append(index)
            used = start + length
        else:
            used += 1 + length
    return breaks


class TextLine:
    """A line of the text part holding placeholders, filled per recipient and then wrapped.

    An ASCII line is laid out by its words' lengths alone: the layout of each set of lengths is
    kept (an address's length takes a few dozen values), so most recipients only split and join.
    """

    __slots__ = ("_layouts", "template")
    _KEPT = 256  # layouts kept per line

    def __init__(self, template: str) -> None:
        self.template = template
        self._layouts: dict[tuple[int, ...], list[int]] = {}

    def fill(self, values: Mapping[str, str], width: int = TEXT_WIDTH) -> str:
        filled = fill(self.template, values)
        plain = filled.replace(BREAK, "")
        if plain.isascii():
            # Most lines fit as they are (a greeting), or are one link: measured, not laid out.
            if len(plain) <= width or " " not in plain.strip():
                return plain
            return self._ascii(plain, width)
        if text_width(plain) <= width:
            return plain
        return lay_out(filled, width)

    def _ascii(self, plain: str, width: int) -> str:
        prefix = _PREFIX.match(plain).group(0)  # type: ignore[union-attr]
        words = plain[len(prefix) :].split()
        lengths = [len(word) for word in words]
        key = (width, len(prefix), *lengths)
        breaks = self._layouts.get(key)
        if breaks is None:
            if len(self._layouts) >= self._KEPT:
                self._layouts.clear()
            breaks = self._layouts[key] = _breaks(len(prefix), lengths, width)
        ends = [*breaks[1:], len(words)]
        lines = [" ".join(words[begin:end]) for begin, end in zip(breaks, ends, strict=True)]
        return prefix + ("\n" + " " * len(prefix)).join(lines)


def fill_text(template: str, values: Mapping[str, str]) -> str:
    """The text part for one recipient: placeholders filled, each line that held one wrapped."""
    return "\n".join(
        TextLine(line).fill(values) if _PATTERN.search(line) else line
        for line in template.split("\n")
    )
