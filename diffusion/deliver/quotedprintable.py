"""Quoted-printable body parts: encoded once per edition, each recipient's values encoded between.

Hand-written over `binascii.b2a_qp` (what `quopri` calls) rather than `quopri` or the email
package's encoder, because the messages go out as they are (`MessageTemplate.wire_ready`):
neither of those escapes a line that starts with "." (which an SMTP server would drop, RFC 5321
4.5.2), and binascii leaves a line over 76 characters when it encodes a trailing space. Each
constant piece ends in a soft break, so that a value encoded on its own can be put after it.
"""

import binascii
import html
import re
from dataclasses import dataclass
from typing import Any

from diffusion.errors import InvalidInput
from diffusion.personalise import FIELDS, TextLine

_PLACEHOLDER = re.compile(rb"\[\[diffusion:([a-z_]+)\]\]")
# RFC 2045: encoded lines are at most 76 characters, the soft break's "=" included.
MAX_LINE = 76


def _cut(line: bytes, width: int) -> int:
    """Where to end a line of at most `width` characters without splitting an "=XX" escape."""
    cut = width
    # Hex digits are never "=", so an escape starts at most two characters back.
    while line[cut - 1 : cut] == b"=" or line[cut - 2 : cut - 1] == b"=":
        cut -= 1
    return cut


def _wrap(line: bytes, last: bool) -> list[bytes]:
    """One encoded line as lines of at most 76 characters; `last=False` ends in a soft break.

    No line starts with ".": an SMTP server drops a leading "." unless the client doubles it
    (RFC 5321 4.5.2), and our messages go out as they are (`MessageTemplate.wire_ready`).
    """
    out = []
    while True:
        if line[:1] == b".":
            line = b"=2E" + line[1:]
        if len(line) <= MAX_LINE - (0 if last else 1):
            break
        cut = _cut(line, MAX_LINE - 1)
        out.append(line[:cut] + b"=\n")
        line = line[cut:]
    out.append(line if last else line + b"=\n")
    return out


def encode(data: bytes, soft_end: bool = False) -> bytes:
    """Quoted-printable with CRLF lines of at most 76 characters, none starting with ".", ended
    by a soft break if asked.

    binascii leaves a line at 77 characters when it encodes a trailing space: re-wrap.
    """
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    lines = encoded.split(b"\n")
    if (
        not soft_end
        and max(map(len, lines)) <= MAX_LINE
        and b"\n." not in encoded
        and encoded[:1] != b"."
    ):
        return encoded.replace(b"\n", b"\r\n")
    out: list[bytes] = []
    for line in lines[:-1]:
        out.extend(_wrap(line, last=True))
        out.append(b"\n")
    out.extend(_wrap(lines[-1], last=not soft_end))
    return b"".join(out).replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class BodyPart:
    """A body part split at its placeholders: encoded constant pieces and the fields between."""

    pieces: tuple[bytes, ...]  # len(fields) + 1, each but the last ending in a soft break
    fields: tuple[Any, ...]  # HTML: field names; text: the TextLine of each line with one
    escape: bool  # HTML: values are escaped

    @classmethod
    def parse(cls, text: str, escape: bool) -> "BodyPart":
        """The HTML part split at its placeholders; the text part (escape=False) at its lines
        that hold one, each wrapped once filled (personalise.TextLine)."""
        body = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
        for found in _PLACEHOLDER.findall(body):
            if (name := found.decode()) not in FIELDS:
                raise InvalidInput(f"edition body: unknown placeholder [[diffusion:{name}]]")
        if escape:
            chunks = _PLACEHOLDER.split(body)
            return cls._of(chunks[0::2], [chunk.decode() for chunk in chunks[1::2]], escape)
        constants: list[bytes] = []
        lines: list[TextLine] = []
        current: list[bytes] = []
        for line in body.splitlines(keepends=True):
            if _PLACEHOLDER.search(line):
                constants.append(b"".join(current))
                lines.append(TextLine(line.rstrip(b"\n").decode()))
                current = [line[len(line.rstrip(b"\n")) :]]  # its newline starts the next piece
            else:
                current.append(line)
        constants.append(b"".join(current))
        return cls._of(constants, lines, escape)

    @classmethod
    def _of(cls, constants: list[bytes], fields: list[Any], escape: bool) -> "BodyPart":
        pieces = [encode(chunk, soft_end=True) if chunk else b"" for chunk in constants[:-1]]
        pieces.append(encode(constants[-1]))
        return cls(tuple(pieces), tuple(fields), escape)

    def fill(self, values: dict[str, str], out: list[bytes]) -> None:
        """Append the part's pieces, values encoded in between, to `out` (joined once, later)."""
        out.append(self.pieces[0])
        for field, piece in zip(self.fields, self.pieces[1:], strict=True):
            if isinstance(field, TextLine):
                value = field.fill(values)
            else:
                value = values[field]
            if self.escape:
                value = html.escape(value, quote=True)
            if value:
                out.append(encode(value.encode("utf-8"), soft_end=True))
            out.append(piece)
