"""RFC 5965 abuse reports (feedback loops): a recipient marked one of our messages as spam."""

import re
from email.message import Message

from diffusion.bounces import verp
from diffusion.bounces.dsn import one_line, returned_headers
from diffusion.bounces.events import Event
from diffusion.config import Settings
from diffusion.tokens import Keys

# Headers of the returned message that carry one of our signed addresses.
_SIGNED_HEADERS = ("Return-Path", "List-Unsubscribe", "Delivered-To", "X-Original-To")
_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")


def is_feedback_report(message: Message) -> bool:
    return any(part.get_content_type() == "message/feedback-report" for part in message.walk())


def _fields(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes):
            from email.parser import BytesHeaderParser

            return BytesHeaderParser().parsebytes(raw)
    return None


def parse(message: Message, settings: Settings, secret: Keys) -> list[Event]:
    """A complaint event for an abuse report; [] for other feedback types or other messages."""
    fields = _fields(message)
    if fields is None:
        return []
    feedback_type = one_line(fields["Feedback-Type"]).lower()
    if feedback_type not in ("abuse", "fraud", "virus", "other", ""):
        return []  # not-spam, auth-failure: no one asked to stop
    original = returned_headers(message)
    why = f"arf {feedback_type or 'abuse'} from {one_line(fields['Reporting-MTA']) or 'unknown'}"
    recipient = one_line(fields["Original-Rcpt-To"]).strip("<>").lower() or None
    message_id = one_line(original["Message-ID"]) if original is not None else None
    subscriber_id = edition_id = None
    if original is not None:
        # Our signed addresses in the returned headers say who, whatever the provider redacted.
        for header in _SIGNED_HEADERS:
            for value in original.get_all(header, []):
                for address in _ADDRESS.findall(str(value)):
                    claim = verp.claim_of_address(settings, secret, address)
                    if claim is not None and subscriber_id is None:
                        subscriber_id, edition_id = claim.subscriber_id, claim.edition_id
    return [
        Event(
            "complaint",
            why,
            "arf",
            subscriber_id=subscriber_id,
            edition_id=edition_id,
            address=recipient if recipient and "@" in recipient else None,
            message_id=message_id or None,
        )
    ]
