"""Edition emails: one byte template per edition, filled in per recipient by byte substitution."""

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.charset import Charset
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from pydantic import SecretStr

from diffusion import i18n, links
from diffusion.bounces import verp
from diffusion.config import Settings
from diffusion.contracts import Recipient
from diffusion.deliver.dkim import Signer
from diffusion.deliver.identity import Sender
from diffusion.deliver.quotedprintable import MAX_LINE, BodyPart
from diffusion.errors import InvalidInput
from diffusion.models import Edition
from diffusion.personalise import greeting
from diffusion.validate import without_controls

# An address we put in a header must be one plain token: no way to smuggle a header through it.
_UNSAFE_ADDRESS = re.compile(r"[\s<>,;\"()\\]|[^\x21-\x7e]")


def one_line(value: str) -> str:
    """Collapse every run of whitespace (CR and LF included) into one space."""
    return " ".join(value.split())


def check_address(address: str) -> str:
    """The address if it can go into an envelope and a header as it is; else InvalidInput."""
    if not address or _UNSAFE_ADDRESS.search(address) or address.count("@") != 1:
        raise InvalidInput(f"email address {address!r} cannot be used in a message header")
    return address


_SUBJECT_SLOT = "diffusion-subject-slot"
_HEADER_WIDTH = 78  # RFC 5322: lines SHOULD be at most 78 characters


def subject_header(subject: str) -> bytes:
    """The Subject header line(s), folded so that a reader decodes exactly `subject`.

    The email package's folder adds a space, or drops one, where it folds next to an encoded
    word or a long word (a folded French subject read back with two spaces). A fold here only
    ever replaces a space: ASCII is folded at spaces; other text (or a word too long for a
    line, or text that looks like an encoded word) becomes RFC 2047 encoded words, which a
    reader joins without adding anything.
    """
    words = subject.split(" ")
    head = "Subject:"
    if subject.isascii() and "=?" not in subject and all(len(w) < _HEADER_WIDTH - 1 for w in words):
        lines, line = [], head
        for word in words:
            if line != head and len(line) + 1 + len(word) > _HEADER_WIDTH:
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        return ("\r\n".join(lines) + "\r\n").encode("ascii")
    encoded = Header(subject, "utf-8", header_name="Subject").encode(
        linesep="\r\n", maxlinelen=_HEADER_WIDTH
    )
    return f"{head} {encoded}\r\n".encode("ascii")


def _header_block(message: EmailMessage) -> bytes:
    """Headers folded and RFC 2047-encoded by the email package, without the blank line."""
    return message.as_bytes(policy=SMTP).split(b"\r\n\r\n", 1)[0] + b"\r\n"


def message_ids(edition: Edition, settings: Settings) -> Callable[[int], str]:
    """The Message-ID of this edition to each subscriber id.

    Decided when the outbox row is queued and stored with it, so that sending writes nothing
    more than "sent", and a retry or a resume sends the same id. The nonce tells editions of
    different databases apart.
    """
    domain = check_address(Sender.of(edition, settings).address).rpartition("@")[2]
    nonce = hashlib.sha1(
        f"{edition.id}:{edition.segment}:{edition.period}:{edition.created_at}".encode()
    ).hexdigest()[:10]
    prefix = f"<{nonce}.{edition.id}."
    suffix = f"@{domain}>"
    return lambda subscriber_id: f"{prefix}{subscriber_id}{suffix}"


# "List-Id: <" + label + "." + list_id + ">" on one line of at most 78 characters (RFC 5322's
# recommended limit, and where the email package would start folding or encoding).
_HEADER_LINE = 78
_MAX_HEADER_LINE = 998  # RFC 5322 2.1.1, CRLF excluded


def _list_label(segment: str, list_id: str = "") -> str:
    """The segment as one DNS label short enough for List-Id to stay on one line.

    A label too long is cut and ends in a hash of the whole segment, so that two long segments
    never share a List-Id; mail filters sort on it, so it is never encoded or folded.
    """
    label = re.sub(r"[^a-z0-9]+", "-", segment.lower()).strip("-") or "all"
    room = max(16, min(63, _HEADER_LINE - len("List-Id: <.>") - len(list_id)))
    if len(label) > room:
        label = label[: room - 9].rstrip("-") + "-" + hashlib.sha1(segment.encode()).hexdigest()[:8]
    return label


def list_id_header(segment: str, settings: Settings) -> bytes:
    """The List-Id line, written as it is: plain ASCII, never RFC 2047-encoded nor folded."""
    return f"List-Id: <{_list_label(segment, settings.list_id)}.{settings.list_id}>\r\n".encode(
        "ascii"
    )


# Control characters (C0, DEL, C1) and the bidirectional overrides that can disguise a name.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_name(value: str) -> str:
    """A display name on one line without control characters."""
    return one_line(_CONTROLS.sub(" ", value))


@dataclass
class MessageTemplate:
    """An edition's email as bytes with holes: built once, filled in per recipient."""

    settings: Settings
    edition_id: int
    sender: str  # envelope sender and From address
    domain: str
    message_ids: Callable[[int], str]
    static_headers: bytes
    boundary: bytes
    text: BodyPart
    html: BodyPart
    signer: Signer | None
    addresses: verp.AddressMaker  # the signed Return-Path and mailto: address of each recipient
    # The unsubscribe link leaves the subscriptions this email covers: those of its cadence.
    cadence: str | None = None
    relay: str | None = None  # the sender identity's own relay, the only one its messages take

    @classmethod
    def from_edition(
        cls, edition: Edition, settings: Settings, *, now: datetime | None = None
    ) -> "MessageTemplate":
        """Build the template of an edition once; `now` dates the messages (default: edition)."""
        if edition.id is None:
            raise InvalidInput("edition has no id: store it before building its messages")
        identity = Sender.of(edition, settings)
        sender = check_address(identity.address)
        domain = sender.rpartition("@")[2]
        headers = EmailMessage()
        headers["From"] = formataddr((clean_name(identity.name), sender))
        if identity.reply_to:
            headers["Reply-To"] = check_address(identity.reply_to)
        subject = one_line(edition.subject) or one_line(
            i18n.newsletter_name(settings, edition.language)
        )
        headers["Subject"] = _SUBJECT_SLOT  # folded by subject_header below, in its place
        headers["Date"] = format_datetime(now or edition.approved_at or edition.created_at)
        after = EmailMessage()  # the headers that follow List-Id, which is written as it is
        after["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        after["MIME-Version"] = "1.0"
        # "=_" can never occur in quoted-printable text, so the boundary cannot clash with a body.
        boundary = f"=_diffusion_{secrets.token_hex(12)}"
        after["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
        # Links are signed per recipient: read the signing key once, not once per message.
        link_settings = settings.replace(secret_key=SecretStr(settings.signing_key()))
        return cls(
            settings=link_settings,
            edition_id=edition.id,
            sender=sender,
            domain=domain,
            message_ids=message_ids(edition, settings),
            static_headers=_header_block(headers).replace(
                b"Subject: " + _SUBJECT_SLOT.encode() + b"\r\n", subject_header(subject), 1
            )
            + list_id_header(edition.segment, settings)
            + _header_block(after),
            boundary=boundary.encode(),
            text=BodyPart.parse(edition.text, escape=False),
            html=BodyPart.parse(edition.html, escape=True),
            signer=Signer.from_settings(settings),
            addresses=verp.AddressMaker(
                link_settings, link_settings.signing_key(), edition.id, from_address=sender
            ),
            cadence=edition.cadence,
            relay=identity.relay,
        )

    @property
    def _text_head(self) -> bytes:
        return (
            b"--" + self.boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )

    @property
    def _html_head(self) -> bytes:
        return (
            b"\r\n--" + self.boundary + b"\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )

    @property
    def _tail(self) -> bytes:
        return b"\r\n--" + self.boundary + b"--\r\n"

    @property
    def wire_ready(self) -> bool:
        """Whether messages are SMTP DATA as they are: CRLF line ends, no line starting with ".".

        Every piece of a message starts a line and ends with CRLF, and is written so (headers by
        the email package or on one line, bodies by `quotedprintable.encode`): the SMTP transport
        sends such bytes without scanning 70 KB twice per message for what was settled once,
        here. dkimpy's signature header is not ours to vouch for.
        """
        return self.signer is None

    def envelope_sender(self, recipient: Recipient) -> str:
        """The Return-Path of this edition to this recipient: a signed VERP address, so that
        whatever comes back to it names them without parsing it (diffusion/bounces/verp.py)."""
        return self.addresses.bounce(recipient.id)

    def message_id(self, recipient: Recipient) -> str:
        """The Message-ID of this edition to this recipient: stable across retries."""
        return self.message_ids(recipient.id)

    def unsubscribe_address(self, recipient: Recipient) -> str:
        """The per-recipient mailto: List-Unsubscribe address, unsubscribe+<token>@domain."""
        return self.addresses.unsubscribe(recipient.id)

    def values(self, recipient: Recipient) -> dict[str, str]:
        name = clean_name(recipient.name)
        return {
            "greeting": greeting(recipient.language, name),
            "name": name,
            "email": recipient.email,
            "unsubscribe_url": links.unsubscribe_url(
                self.settings, recipient.id, cadence=self.cadence
            ),
            "preferences_url": links.preferences_url(self.settings, recipient.id),
        }

    def personalise(self, recipient: Recipient, message_id: str | None = None) -> bytes:
        """The complete message for one recipient, as bytes ready for SMTP or a .eml file."""
        return self.fill(recipient, self.values(recipient), message_id)

    def fill(
        self, recipient: Recipient, values: dict[str, str], message_id: str | None = None
    ) -> bytes:
        """The message for one recipient with the given placeholder values."""
        address = check_address(recipient.email)
        message_id = message_id or self.message_id(recipient)
        if not (message_id.isascii() and message_id.isprintable()):
            raise InvalidInput(f"Message-ID {message_id!r} cannot go into a header")
        unsubscribe = values["unsubscribe_url"]
        headers = b"".join(
            (
                self.static_headers,
                b"To: ",
                _to_header(values["name"], address),
                b"\r\nMessage-ID: ",
                message_id.encode("ascii"),
                b"\r\nList-Unsubscribe: <",
                one_line(unsubscribe).replace(">", "%3E").encode("ascii"),
                b">,\r\n <mailto:",
                check_address(self.unsubscribe_address(recipient)).encode("ascii"),
                b"?subject=unsubscribe>\r\n\r\n",
            )
        )
        # One join for the whole message: it is copied once, not once per part.
        out = [headers, self._text_head]
        self.text.fill(values, out)
        out.append(self._html_head)
        self.html.fill(values, out)
        out.append(self._tail)
        message = b"".join(out)
        if self.signer is not None:
            message = self.signer.sign(message)
        return message


def _to_header(name: str, address: str) -> bytes:
    """`name <address>`; `name` has no CR/LF. formataddr quotes specials and makes a non-ASCII
    name one RFC 2047 word; a name so long that the line would pass 998 octets is written one
    word per name part instead, folded on lines of at most 76 characters."""
    # A name stored before names lost their control characters at the door loses them here.
    name = without_controls(name)
    plain = formataddr((name[:200], address), charset="utf-8")
    if len(plain) < _MAX_HEADER_LINE - len("To: "):
        return plain.encode("ascii")
    utf8 = Charset("utf-8")
    lines, line = [], ""
    for part in name[:200].split():
        word = utf8.header_encode(part[:40])
        if line and len(line) + 1 + len(word) > MAX_LINE:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(f"{line} <{address}>" if line else f"<{address}>")
    return "\r\n ".join(lines).encode("ascii")


def serialise(message: EmailMessage, settings: Settings) -> bytes:
    """A transactional message as SMTP bytes, DKIM-signed when configured."""
    data = message.as_bytes(policy=SMTP)
    signer = Signer.from_settings(settings)
    return signer.sign(data) if signer is not None else data
