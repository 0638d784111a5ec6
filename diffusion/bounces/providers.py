"""Provider events (Amazon SES through SNS, Mailgun) as plain events; signatures verified.

Verification and translation only: the web layer answers, `process.apply_once` changes state.
"""

import base64
import hashlib
import hmac
import json
import re
import threading
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from diffusion.bounces import verp
from diffusion.bounces.events import Event, Kind
from diffusion.config import Settings
from diffusion.errors import DiffusionError
from diffusion.tokens import Keys

# SNS signs these fields, in this order, as "Name\nvalue\n" (those present).
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
# Mailgun's signature is refused when older than this: a captured request cannot be replayed.
MAILGUN_MAX_AGE_SECONDS = 15 * 60
_certificates: dict[str, rsa.RSAPublicKey] = {}
_certificates_lock = threading.Lock()


class BadSignature(DiffusionError, PermissionError):
    """A provider's request whose signature, certificate or secret does not verify."""


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _public_key(url: str, settings: Settings) -> rsa.RSAPublicKey:
    if not re.fullmatch(settings.bounces.sns_cert_url_pattern, url):
        raise BadSignature(f"SigningCertURL {url!r} is not an Amazon SNS certificate address")
    with _certificates_lock:
        if url in _certificates:
            return _certificates[url]
    try:
        answer = httpx.get(url, timeout=settings.collect.fetch_timeout, follow_redirects=False)
        answer.raise_for_status()
        key = x509.load_pem_x509_certificate(answer.content).public_key()
    except (httpx.HTTPError, ValueError) as exc:
        raise BadSignature(f"SigningCertURL {url!r}: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadSignature(f"SigningCertURL {url!r}: not an RSA certificate")
    with _certificates_lock:
        _certificates[url] = key
    return key


def verify_sns(envelope: dict[str, Any], settings: Settings) -> None:
    """Raise BadSignature unless SNS signed this message with its certificate."""
    kind = _text(envelope.get("Type"))
    fields = _SIGNED_FIELDS.get(kind)
    algorithm = _HASHES.get(_text(envelope.get("SignatureVersion")))
    if fields is None or algorithm is None:
        raise BadSignature(f"SNS message of type {kind!r}, signature version not 1 or 2")
    signed = "".join(
        f"{name}\n{envelope[name]}\n" for name in fields if isinstance(envelope.get(name), str)
    )
    try:
        signature = base64.b64decode(_text(envelope.get("Signature")), validate=True)
    except ValueError as exc:
        raise BadSignature("SNS Signature is not base64") from exc
    key = _public_key(_text(envelope.get("SigningCertURL")), settings)
    try:
        key.verify(signature, signed.encode(), padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise BadSignature("SNS signature does not verify") from exc


def subscribe_url(envelope: dict[str, Any]) -> str | None:
    """The address confirming an SNS subscription, if it is on the certificate's host."""
    url = _text(envelope.get("SubscribeURL"))
    cert = urlsplit(_text(envelope.get("SigningCertURL")))
    target = urlsplit(url)
    return url if (target.scheme, target.netloc) == (cert.scheme, cert.netloc) else None


def _claim(settings: Settings, secret: Keys, address: object) -> verp.Claim | None:
    return verp.claim_of_address(settings, secret, address) if isinstance(address, str) else None


def _message_id(value: object) -> str | None:
    text = _text(value).strip()
    if not text:
        return None
    return text if text.startswith("<") else f"<{text}>"


def ses_events(message: dict[str, Any], settings: Settings, secret: Keys) -> list[Event]:
    """The events of an SES notification (the SNS message's JSON body)."""
    kind = _text(message.get("notificationType") or message.get("eventType"))
    mail = _dict(message.get("mail"))
    claim = _claim(settings, secret, mail.get("source"))
    message_id = None
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and _text(header.get("name")).lower() == "message-id":
            message_id = _message_id(header.get("value"))
    if kind == "Bounce":
        details = _dict(message.get("bounce"))
        bounce_type = _text(details.get("bounceType"))
        what: Kind = "hard" if bounce_type == "Permanent" else "soft"
        recipients = details.get("bouncedRecipients") or []
        why = f"ses {bounce_type} {_text(details.get('bounceSubType'))}".strip()
    elif kind == "Complaint":
        details = _dict(message.get("complaint"))
        if _text(details.get("complaintFeedbackType")) == "not-spam":
            return []
        what, recipients = "complaint", details.get("complainedRecipients") or []
        why = f"ses complaint {_text(details.get('complaintFeedbackType')) or 'abuse'}"
    else:
        return []  # Delivery, Send, Open...: nothing to change
    events = []
    for recipient in recipients:
        if not isinstance(recipient, dict):
            continue
        address = _text(recipient.get("emailAddress")).strip().lower() or None
        diagnostic = _text(recipient.get("diagnosticCode"))
        events.append(
            Event(
                what,
                f"{why} {diagnostic}".strip(),
                "ses",
                subscriber_id=claim.subscriber_id if claim and len(recipients) == 1 else None,
                edition_id=claim.edition_id if claim and len(recipients) == 1 else None,
                address=address,
                message_id=message_id,
            )
        )
    return events


def verify_mailgun(signature: dict[str, Any], settings: Settings, *, now: datetime) -> str:
    """The request's token once its HMAC verifies under the signing key; else BadSignature."""
    if settings.bounces.mailgun_signing_key is None:
        raise BadSignature("no Mailgun signing key is configured")
    timestamp, token = _text(signature.get("timestamp")), _text(signature.get("token"))
    expected = hmac.new(
        settings.bounces.mailgun_signing_key.get_secret_value().encode(),
        (timestamp + token).encode(),
        hashlib.sha256,
    ).hexdigest()
    if not token or not hmac.compare_digest(expected, _text(signature.get("signature"))):
        raise BadSignature("Mailgun signature does not verify")
    if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > MAILGUN_MAX_AGE_SECONDS:
        raise BadSignature("Mailgun signature is too old (or from the future): a replay?")
    return token


def mailgun_events(data: dict[str, Any], settings: Settings, secret: Keys) -> list[Event]:
    """The events of one Mailgun webhook's event-data."""
    event = _text(data.get("event"))
    severity = _text(data.get("severity"))
    kinds: dict[tuple[str, str], Kind] = {
        ("failed", "permanent"): "hard",
        ("failed", "temporary"): "delay",  # Mailgun is still retrying
        ("complained", ""): "complaint",
        ("unsubscribed", ""): "unsubscribe",
    }
    kind = kinds.get((event, severity if event == "failed" else ""))
    if kind is None:
        return []
    envelope = _dict(data.get("envelope"))
    claim = _claim(settings, secret, envelope.get("sender"))
    headers = _dict(_dict(data.get("message")).get("headers"))
    status = _dict(data.get("delivery-status"))
    why = f"mailgun {event} {severity} {status.get('code', '')} {_text(status.get('message'))}"
    return [
        Event(
            kind,
            " ".join(why.split()),
            "mailgun",
            subscriber_id=claim.subscriber_id if claim else None,
            edition_id=claim.edition_id if claim else None,
            address=_text(data.get("recipient")).strip().lower() or None,
            message_id=_message_id(headers.get("message-id")),
        )
    ]


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadSignature(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadSignature("not a JSON object")
    return value
