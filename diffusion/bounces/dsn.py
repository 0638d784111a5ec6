"""RFC 3464 delivery status notifications, also nested in other reports or base64-encoded."""

import base64
import binascii
import quopri
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

from diffusion.bounces.events import Event, Kind


def one_line(value: object) -> str:
    """A header's value on one line, RFC 2047 words decoded."""
    text = str(value or "")
    if "=?" in text:
        try:
            text = str(make_header(decode_header(text)))
        except (HeaderParseError, LookupError, UnicodeDecodeError):
            pass  # a malformed encoded word: keep it as it came
    return " ".join(text.split())


def _address(field_value: object) -> str | None:
    """`rfc822; someone@example.org` -> someone@example.org."""
    text = one_line(field_value)
    if not text:
        return None
    address = text.split(";", 1)[-1].strip().strip("<>").lower()
    return address if "@" in address else None


def returned_headers(report: Message) -> Message | None:
    """The headers of the message a report returns (message/rfc822 or text/rfc822-headers).

    The innermost one: a relay that forwards a report wraps it in a message/rfc822 of its own,
    and the message that bounced is the last returned part in depth-first order.
    """
    found = None
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get_content_type() != "multipart/report":
                found = inner
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                found = BytesHeaderParser().parsebytes(raw)
    return found


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status part, however it was encoded."""
    payload = part.get_payload()
    encoding = one_line(part["Content-Transfer-Encoding"]).lower()
    if encoding not in ("base64", "quoted-printable"):
        if isinstance(payload, list):
            return [block for block in payload if isinstance(block, Message)]
        return []
    # The email package splits the part into blocks before decoding: some servers send it in
    # base64, so join what it split, decode, and split again.
    encoded = "\n".join(
        block.as_string() if isinstance(block, Message) else str(block)
        for block in (payload if isinstance(payload, list) else [payload])
    )
    try:
        if encoding == "base64":
            raw = base64.b64decode("".join(encoded.split()), validate=False)
        else:
            raw = quopri.decodestring(encoded.encode("ascii", "replace"))
    except (binascii.Error, ValueError):
        return []
    text = raw.decode("ascii", "replace").replace("\r\n", "\n")
    return [HeaderParser().parsestr(block.strip() + "\n") for block in text.split("\n\n")]


def _kind(action: str, status: str) -> Kind | None:
    if action == "delayed" or (action == "failed" and status.startswith("4")):
        return "delay" if action == "delayed" else "soft"
    if action == "failed":
        return "hard" if status.startswith("5") or not status else "soft"
    return None  # delivered, relayed, expanded: nothing went wrong


def parse(report: Message) -> list[Event]:
    """The per-recipient events of every delivery-status part; [] when there is none."""
    original = returned_headers(report)
    message_id = one_line(original["Message-ID"]) if original is not None else ""
    found = []
    for part in report.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _blocks(part)[1:]:  # the first block is about the message
            action = one_line(block["Action"]).lower()
            status = one_line(block["Status"]).split(" ")[0]
            kind = _kind(action, status)
            if kind is None:
                continue
            diagnostic = one_line(block["Diagnostic-Code"])
            found.append(
                Event(
                    kind,
                    f"dsn {action} {status} {diagnostic}".strip(),
                    "dsn",
                    address=_address(block["Original-Recipient"])
                    or _address(block["Final-Recipient"]),
                    message_id=message_id or None,
                )
            )
    return found
