"""SMTP PIPELINING (RFC 2920): commands written in groups, their replies read in order.

aiosmtplib sets the connection up (TLS, EHLO, AUTH); then its reading protocol is replaced by
`Replies`. aiosmtplib's own protocol expects one reply per command it awaits: it parses only the
first reply of a packet and drops data that arrives while no command waits, so the several
replies of a pipelined group, which come back in one packet, would be lost and the next read
would wait for ever.
"""

import asyncio
import re
from collections import deque
from collections.abc import Sequence

import aiosmtplib
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

# A reply longer than this without its last line is not an SMTP server talking.
MAX_REPLY_BYTES = 64 * 1024
# What would end or bend a command line. Envelope addresses were checked when the message was
# made (message.check_address); this is the last guard, cheaper than aiosmtplib's quote_address,
# whose email.utils parse cost a tenth of a millisecond a message.
_OFF_THE_LINE = re.compile(rb"[\x00-\x20\x7f<>]")


def _path(address: str, encoding: str) -> bytes:
    """<address> for MAIL or RCPT; ValueError (or UnicodeEncodeError) if it cannot go there."""
    encoded = address.encode(encoding)
    if not encoded or _OFF_THE_LINE.search(encoded):
        raise ValueError(f"{address!r} cannot go on an SMTP command line")
    return b"<" + encoded + b">"


class Replies(asyncio.Protocol):
    """Every reply of a connection, parsed as it arrives, however the packets cut them."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[bytes] = []  # the lines so far of a multi-line reply
        self._ready: deque[aiosmtplib.SMTPResponse] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.lost: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) != -1:
            line = bytes(self._buffer[start : end + 1])
            start = end + 1
            self._lines.append(line)
            if line[3:4] == b"-":
                continue  # a continuation line: the reply goes on
            self._ready.append(self._parse(self._lines))
            self._lines = []
        del self._buffer[:start]
        if len(self._buffer) + sum(map(len, self._lines)) > MAX_REPLY_BYTES:
            self._lose(aiosmtplib.SMTPServerDisconnected("the reply is too long for SMTP"))
        self._wake()

    def _parse(self, lines: list[bytes]) -> aiosmtplib.SMTPResponse:
        try:
            code = int(lines[-1][:3])
        except ValueError:
            self._lose(aiosmtplib.SMTPServerDisconnected(f"not an SMTP reply: {lines[-1]!r}"))
            code = -1
        text = "\n".join(line[4:].strip(b" \t\r\n").decode("utf-8", "replace") for line in lines)
        return aiosmtplib.SMTPResponse(code, text)

    def eof_received(self) -> bool:
        self._lose(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
        lost.__cause__ = exc
        self._lose(lost)

    def _lose(self, exc: Exception) -> None:
        if self.lost is None:
            self.lost = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, within: float) -> aiosmtplib.SMTPResponse:
        """The next reply in order; SMTPServerDisconnected, or TimeoutError after `within` s."""
        while not self._ready:
            if self.lost is not None:
                raise self.lost
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, within)
            finally:
                self._waiter = None
        return self._ready.popleft()


class Pipeline:
    """A connection aiosmtplib opened, greeted and logged into, now written to in groups."""

    def __init__(self, client: aiosmtplib.SMTP, timeout: float) -> None:
        transport = client.transport
        if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport = transport
        self.timeout = timeout
        self.size = client.supports_extension("size")
        self.encoding = "utf-8" if client.supports_extension("smtputf8") else "ascii"
        self.dirty = False  # a transaction broke off before its data: RSET before the next
        self.replies = Replies()
        transport.set_protocol(self.replies)

    @property
    def open(self) -> bool:
        return self.replies.lost is None and not self.transport.is_closing()

    def envelope(self, sender: str, recipients: Sequence[str], size: int, rset: bool) -> bytes:
        """MAIL, RCPT per recipient and DATA (after RSET when the last transaction broke off).

        ValueError when an address cannot go on a command line.
        """
        mail = b"MAIL FROM:" + _path(sender, self.encoding)
        if self.size:
            mail += b" SIZE=%d" % size
        commands = [b"RSET"] if rset else []
        commands.append(mail)
        commands.extend(b"RCPT TO:" + _path(r, self.encoding) for r in recipients)
        commands.append(b"DATA")
        return b"".join(command + b"\r\n" for command in commands)

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self.open:
            raise self.replies.lost or aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport.write(data)

    @staticmethod
    def content(data: bytes, wire_ready: bool, following: bytes = b"") -> bytes:
        """The message as DATA carries it, ended by the lone dot, then the `following` commands.

        `wire_ready`: CRLF line ends and no line starting with "." already (see session.send_data).
        """
        if not wire_ready:
            data = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data))
        return b"".join((data, b".\r\n", following))

    async def reply(self) -> aiosmtplib.SMTPResponse:
        return await self.replies.next(self.timeout)

    def close(self) -> None:
        self.transport.abort()

    async def quit(self) -> None:
        """QUIT and wait a little for its answer; the connection is closed either way."""
        try:
            self.write(b"QUIT\r\n")
            await self.replies.next(min(self.timeout, 5.0))
        except (aiosmtplib.SMTPServerDisconnected, TimeoutError, OSError):
            pass
        finally:
            self.transport.close()
