"""Recognition: one message in, the events it reports out, in a fixed order of trust.

1. the addresses it was delivered to: a signed mailto: unsubscribe address, a VERP address;
2. an RFC 5965 abuse report; 3. an RFC 3464 report (nested or encoded too); 4. flufl.bounce's
detectors for the notices of servers that write none; 5. auto-replies and replies, which never
count. A VERP address says who whatever the format; nothing else is guessed from the text.
"""

import copy
import re
from email.message import Message

from flufl import bounce as flufl
from flufl.bounce import _scan

from diffusion.bounces import arf, autoreply, dsn, verp
from diffusion.bounces.events import Event, Kind, Recognised
from diffusion.config import Settings
from diffusion.tokens import Keys

_SEVERITY: dict[str, int] = {"hard": 3, "soft": 2, "delay": 1}
# Words of "still trying" notices that no parser knows: a VERP return saying these is a delay.
_DELAY = re.compile(
    r"delayed|delay(ed)? mail|still (being )?(re)?tr|will (be )?retr|not (yet )?been delivered|"
    r"warning only|"
    r"warning: could not send|has been postponed|retrying|nouvelle tentative|"
    r"verzögert|zustellung verzögert|retrasad",
    re.IGNORECASE,
)


def _decoded(message: Message) -> Message:
    """A copy whose text parts are decoded: flufl.bounce's line detectors read them as stored."""
    plain = copy.deepcopy(message)
    for part in plain.walk():
        encoding = str(part.get("Content-Transfer-Encoding", "")).lower()
        if (
            part.is_multipart()
            or part.get_content_maintype() != "text"
            or encoding
            in (
                "",
                "7bit",
                "8bit",
                "binary",
            )
        ):
            continue
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes):
            charset = part.get_content_charset() or "us-ascii"
            try:
                text = raw.decode(charset, "replace")
            except LookupError:
                text = raw.decode("latin-1")
            del part["Content-Transfer-Encoding"]
            part["Content-Transfer-Encoding"] = "8bit"
            part.set_payload(text)
    return plain


def _addresses(found: object) -> list[str]:
    out = []
    for address in found:  # type: ignore[attr-defined]
        text = address.decode("ascii", "replace") if isinstance(address, bytes) else str(address)
        text = text.strip().strip("<>").lower()
        if "@" in text:
            out.append(text)
    return sorted(out)


def _flufl(message: Message, ours: tuple[str, ...]) -> list[Event]:
    """The failures flufl.bounce's detectors report, naming the detector that found them."""
    plain = _decoded(message)
    detectors = getattr(_scan, "_DETECTORS", None)
    if not detectors:  # a later flufl.bounce without the list: the same work, unnamed
        temporary, permanent = flufl.all_failures(plain)
        found = [("flufl.bounce", temporary, permanent)]
    else:
        found = []
        for detector in detectors:
            temporary, permanent = detector().process(plain)
            if temporary or permanent:
                found.append((f"flufl:{detector.__name__}", temporary, permanent))
                break
    events = []
    for via, temporary, permanent in found:
        for kind, addresses in (("hard", permanent), ("delay", temporary)):
            for address in _addresses(addresses):
                if address.split("@")[0].split("+")[0] in ours:
                    continue  # our own bounce or From address, quoted in the notice
                kind_: Kind = "hard" if kind == "hard" else "delay"
                events.append(Event(kind_, f"{via} {kind} failure", via, address=address))
    return events


def _text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return raw.decode(part.get_content_charset() or "latin-1", "replace")[:4000]
    return ""


def _warning(message: Message) -> bool:
    return bool(_DELAY.search(dsn.one_line(message["Subject"]) + "\n" + _text(message)))


def _attribute(events: list[Event], claim: verp.Claim) -> list[Event]:
    """A report returned to a VERP address is about its one recipient: keep the worst event."""
    bounces = [event for event in events if event.kind in _SEVERITY]
    others = [
        event.with_identity(claim.subscriber_id, claim.edition_id)
        for event in events
        if event.kind not in _SEVERITY
    ]
    if bounces:
        worst = max(bounces, key=lambda event: _SEVERITY[event.kind])
        others.append(worst.with_identity(claim.subscriber_id, claim.edition_id))
    return others


def recognise(message: Message, settings: Settings, secret: Keys) -> Recognised:
    """What a message received at the bounce or unsubscribe address reports."""
    claims = verp.claims_of(settings, secret, message)
    unsubscribes = [claim for claim in claims if claim.purpose == verp.UNSUBSCRIBE_PURPOSE]
    if unsubscribes:
        # RFC 2369/8058: the message itself is the request, whatever its subject or body.
        return Recognised(
            tuple(
                Event(
                    "unsubscribe",
                    "sent to the mailto: List-Unsubscribe address",
                    "mailto",
                    subscriber_id=claim.subscriber_id,
                )
                for claim in unsubscribes
            )
        )
    claim = next((c for c in claims if c.purpose == verp.BOUNCE_PURPOSE), None)
    if arf.is_feedback_report(message):
        events = arf.parse(message, settings, secret)
        if not events:
            return Recognised(skipped="a feedback report that is no complaint")
    else:
        events = dsn.parse(message)
        if not events and not autoreply.auto_reply(message):
            ours = (
                settings.bounces.local_part.lower(),
                settings.from_address.split("@")[0],
                *(sender.address.split("@")[0] for sender in settings.senders),
            )
            events = _flufl(message, ours)
    if events and all(event.via.startswith("flufl") for event in events) and _warning(message):
        # A "still trying" notice quotes the refusal it retries ("RCPT TO:<...>: 451"), and
        # flufl.bounce's line patterns can take that for a permanent failure.
        events = [
            Event(
                "delay",
                f"{event.why}, but the notice is a warning",
                event.via,
                address=event.address,
            )
            for event in events
        ]
    if events:
        return Recognised(tuple(_attribute(events, claim) if claim else events))
    never_counted: tuple[tuple[Kind, str | None], ...] = (
        ("auto_reply", autoreply.auto_reply(message)),
        ("not_bounce", autoreply.reply(message)),
    )
    for kind_, why_not in never_counted:
        if why_not:
            skipped = Event(kind_, why_not, "headers")
            if claim is not None:
                skipped = skipped.with_identity(claim.subscriber_id, claim.edition_id)
            return Recognised((skipped,), skipped=why_not)
    if claim is not None:
        kind: Kind = "delay" if _warning(message) else "soft"
        event = Event(kind, "returned to its VERP address in a format no parser knows", "verp")
        return Recognised((event.with_identity(claim.subscriber_id, claim.edition_id),))
    return Recognised(skipped="not a delivery report: no report, no known notice, no VERP address")
