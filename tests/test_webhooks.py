"""Provider webhooks: SES through SNS (signature verified against its certificate) and Mailgun."""

import base64
import hashlib
import hmac
import json
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import select

from diffusion import db
from diffusion.bounces import providers, verp
from diffusion.config import Settings
from diffusion.models import OutboxMessage, Person
from diffusion.runtime import Runtime
from diffusion.web.app import create_app
from tests.certs import KeyPair, make_cert
from tests.feedserver import FeedServer
from tests.test_bounces import mailed

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
MAILGUN_KEY = "key-mailgun-test-signing-0123456789"


@pytest.fixture
def signer(tmp_path: Path) -> KeyPair:
    return make_cert(tmp_path / "sns", "sns.eu-west-1.amazonaws.com")


@pytest.fixture
def cert_server(signer: KeyPair) -> Iterator[FeedServer]:
    with FeedServer() as server:
        pem = signer.cert.public_bytes(serialization.Encoding.PEM)
        server.route("/SimpleNotificationService-test.pem", pem, content_type="text/plain")
        yield server


@pytest.fixture
def hooked(settings: Settings) -> Settings:
    return settings.replace(
        sns_cert_url_pattern=r"http://127\.0\.0\.1:\d+/SimpleNotificationService-[a-z]+\.pem",
        mailgun_signing_key=SecretStr(MAILGUN_KEY),
    )


@pytest.fixture
def client(hooked: Settings, engine: Engine) -> Iterator[TestClient]:
    providers._certificates.clear()  # each test serves its own certificate
    with TestClient(create_app(Runtime(hooked, engine=engine))) as test_client:
        yield test_client


def sns(
    signer: KeyPair, cert_url: str, message: dict[str, Any], message_id: str, **fields: str
) -> dict[str, Any]:
    """An SNS message signed as SNS signs it (SignatureVersion 2: SHA256withRSA)."""
    envelope = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-bounces",
        "Message": json.dumps(message),
        "Timestamp": "2026-12-02T08:00:00.000Z",
        "SignatureVersion": "2",
        "SigningCertURL": cert_url,
        **fields,
    }
    names = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    if envelope["Type"] == "SubscriptionConfirmation":
        names = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    signed = "".join(f"{name}\n{envelope[name]}\n" for name in names if name in envelope)
    signature = signer.key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    envelope["Signature"] = base64.b64encode(signature).decode()
    return envelope


def ses_bounce(
    address: str, bounce_type: str, source: str = "newsletter@diffusion.example.org"
) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": address, "diagnosticCode": "smtp; 550 5.1.1 user unknown"}
            ],
        },
        "mail": {"source": source, "messageId": "0100018c-ses-id"},
    }


def status(engine: Engine, email: str) -> str:
    with db.session_scope(engine) as session:
        return session.exec(select(Person.status).where(Person.email == email)).one()


def test_ses_bounces_and_complaints_signed_by_sns_are_applied_once(
    client: TestClient, hooked: Settings, engine: Engine, signer: KeyPair, cert_server: FeedServer
) -> None:
    rows = mailed(engine, hooked, ["gone@example.org", "angry@example.org", "full@example.org"])
    cert_url = cert_server.url("/SimpleNotificationService-test.pem")
    gone = sns(signer, cert_url, ses_bounce("gone@example.org", "Permanent"), "m-1")
    assert client.post("/webhooks/ses", content=json.dumps(gone)).status_code == 200
    assert status(engine, "gone@example.org") == "bounced"
    # Sent again by SNS (it retries until answered): counted once.
    assert client.post("/webhooks/ses", content=json.dumps(gone)).status_code == 200

    # The VERP envelope sender SES reports names the person, whatever address it lists.
    row = rows["angry@example.org"]
    source = verp.bounce_address(hooked, hooked.signing_key(), row.subscriber_id, row.edition_id)
    complaint = {
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "alias@forwarder.example"}],
                      "complaintFeedbackType": "abuse"},
        "mail": {"source": source},
    }  # fmt: skip
    answer = client.post(
        "/webhooks/ses", content=json.dumps(sns(signer, cert_url, complaint, "m-2"))
    )
    assert answer.status_code == 200
    assert status(engine, "angry@example.org") == "complained"

    transient = sns(signer, cert_url, ses_bounce("full@example.org", "Transient"), "m-3")
    assert client.post("/webhooks/ses", content=json.dumps(transient)).status_code == 200
    with db.session_scope(engine) as session:
        full = session.exec(select(Person).where(Person.email == "full@example.org")).one()
        assert (full.status, full.soft_bounces) == ("active", 1)
    assert cert_server.requests("/SimpleNotificationService-test.pem") == 1  # kept once fetched


def test_ses_requests_with_bad_signatures_get_403_and_change_nothing(
    client: TestClient, hooked: Settings, engine: Engine, signer: KeyPair, cert_server: FeedServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    mailed(engine, hooked, ["kept@example.org"])
    cert_url = cert_server.url("/SimpleNotificationService-test.pem")
    good = sns(signer, cert_url, ses_bounce("kept@example.org", "Permanent"), "m-9")
    tampered = dict(good, Message=json.dumps(ses_bounce("kept@example.org", "Permanent")) + " ")
    forger = make_cert(tmp_path / "forger", "sns.eu-west-1.amazonaws.com")
    # Signed by another key, naming SNS's certificate: the signature does not verify.
    forged = sns(forger, cert_url, ses_bounce("kept@example.org", "Permanent"), "m-10")
    # Signed by the forger with its own certificate, served where SNS keeps none.
    cert_server.route("/evil.pem", forger.cert.public_bytes(serialization.Encoding.PEM))
    evil_url = cert_server.url("/evil.pem")
    elsewhere = sns(forger, evil_url, ses_bounce("kept@example.org", "Permanent"), "m-11")
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    for bad in (tampered, forged, elsewhere, unsigned, {"Type": "Notification"}):
        answer = client.post("/webhooks/ses", content=json.dumps(bad))
        assert answer.status_code == 403, bad
    assert client.post("/webhooks/ses", content=b"not json").status_code == 403
    assert status(engine, "kept@example.org") == "active"
    with db.session_scope(engine) as session:
        assert all(r.state == "sent" for r in session.exec(select(OutboxMessage)).all())


def test_a_notification_larger_than_any_form_reaches_the_webhook(
    client: TestClient, hooked: Settings, engine: Engine, signer: KeyPair, cert_server: FeedServer
) -> None:
    # SNS notifications run up to 256 KB, past the 64 KiB the forms accept.
    mailed(engine, hooked, ["large@example.org"])
    notice = dict(ses_bounce("large@example.org", "Permanent"), padding="x" * 200_000)
    signed = sns(signer, cert_server.url("/SimpleNotificationService-test.pem"), notice, "m-big")
    body = json.dumps(signed).encode()
    assert len(body) > hooked.web.max_body_bytes
    assert client.post("/webhooks/ses", content=body).status_code == 200
    assert status(engine, "large@example.org") == "bounced"
    assert client.post("/unsubscribe/x", content=body).status_code == 413


def mailgun_body(event_data: dict[str, Any], *, key: str = MAILGUN_KEY, token: str = "t" * 50,
                 timestamp: int | None = None) -> bytes:  # fmt: skip
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": stamp, "token": token, "signature": signature},
         "event-data": event_data}
    ).encode()  # fmt: skip


def test_mailgun_events_with_their_signature(
    client: TestClient, hooked: Settings, engine: Engine
) -> None:
    rows = mailed(engine, hooked, ["gone@example.org", "slow@example.org", "bye@example.org"])
    failed = {
        "event": "failed",
        "severity": "permanent",
        "recipient": "gone@example.org",
        "delivery-status": {"code": 550, "message": "5.1.1 no such user"},
        "message": {
            "headers": {"message-id": (rows["gone@example.org"].message_id or "").strip("<>")}
        },
    }
    for bad in (
        mailgun_body(failed, key="not-the-key"),
        mailgun_body(failed, timestamp=int(time.time()) - 3600),  # a replay
        mailgun_body(failed, token="u" * 50)[:-40] + b"}}",
    ):
        assert client.post("/webhooks/mailgun", content=bad).status_code == 403
    assert status(engine, "gone@example.org") == "active"

    assert (
        client.post("/webhooks/mailgun", content=mailgun_body(failed, token="a" * 50)).status_code
        == 200
    )
    assert status(engine, "gone@example.org") == "bounced"
    temporary = {"event": "failed", "severity": "temporary", "recipient": "slow@example.org"}
    assert (
        client.post(
            "/webhooks/mailgun", content=mailgun_body(temporary, token="b" * 50)
        ).status_code
        == 200
    )
    assert status(engine, "slow@example.org") == "active"
    row = rows["bye@example.org"]
    unsubscribed = {
        "event": "unsubscribed",
        "recipient": "someone-else@example.org",
        "envelope": {
            "sender": verp.bounce_address(
                hooked, hooked.signing_key(), row.subscriber_id, row.edition_id
            )
        },
    }
    assert (
        client.post(
            "/webhooks/mailgun", content=mailgun_body(unsubscribed, token="c" * 50)
        ).status_code
        == 200
    )
    assert status(engine, "bye@example.org") == "unsubscribed"


def test_an_sns_subscription_is_confirmed_only_when_signed_and_on_the_certificates_host(
    client: TestClient, signer: KeyPair, cert_server: FeedServer
) -> None:
    cert_url = cert_server.url("/SimpleNotificationService-test.pem")
    cert_server.route("/confirm", b"<ConfirmSubscriptionResponse/>", content_type="text/xml")
    fields = {
        "Type": "SubscriptionConfirmation",
        "Token": "tok",
        "SubscribeURL": cert_server.url("/confirm"),
    }
    confirmation = sns(signer, cert_url, {"x": 1}, "c-1", **fields)
    assert client.post("/webhooks/ses", content=json.dumps(confirmation)).status_code == 200
    assert cert_server.requests("/confirm") == 1
    elsewhere = sns(
        signer, cert_url, {"x": 1}, "c-2", **dict(fields, SubscribeURL="http://localhost:9/confirm")
    )
    assert client.post("/webhooks/ses", content=json.dumps(elsewhere)).status_code == 403
    forged = dict(confirmation, Token="other")
    assert client.post("/webhooks/ses", content=json.dumps(forged)).status_code == 403
    assert cert_server.requests("/confirm") == 1
