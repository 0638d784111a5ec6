"""Edition messages read back with the email parser: headers, parts, encoding, DKIM, send_one."""

import dataclasses
import mailbox
import random
import re
import subprocess
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import dkim
import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from diffusion.bounces import verp
from diffusion.config import Settings, load_settings
from diffusion.contracts import Recipient, Segment
from diffusion.deliver import MessageTemplate, send_one
from diffusion.errors import DeliveryError, InvalidInput
from diffusion.models import Edition
from diffusion.personalise import fill_text, greeting
from diffusion.tokens import read_token
from tests.smtpserver import EDITION_HTML, EDITION_TEXT, RecordingServer, smtp_server

__all__ = ["smtp_server"]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def mail_settings(tmp_path: Path) -> Settings:
    return load_settings(
        home=tmp_path,
        secret_key="test-secret-key-for-signing-links",
        base_url="https://diffusion.example.org",
        reply_to="partnerships@example.org",
    )


def edition(subject: str = "NGO partners' newsletter, November 2026", **fields: str) -> Edition:
    return Edition(
        id=7,
        segment=Segment("liaison_committee").id,
        audience="liaison_committee",
        period="2026-11",
        subject=subject,
        html=fields.get("html", EDITION_HTML),
        text=fields.get("text", EDITION_TEXT),
        status="approved",
        created_at=NOW,
    )


def reader(number: int = 3, name: str = "Amina Diallo", email: str = "") -> Recipient:
    return Recipient(number, email or f"reader{number}@example.org", name, "en")


def parse(data: bytes) -> EmailMessage:
    return cast(EmailMessage, message_from_bytes(data, policy=policy.default))


def test_a_personalised_message_has_the_headers_and_parts_of_a_newsletter(
    mail_settings: Settings,
) -> None:
    template = MessageTemplate.from_edition(edition(), mail_settings, now=NOW)
    values = template.values(reader())
    data = template.fill(reader(), values)
    message = parse(data)

    assert message["From"].addresses[0].addr_spec == mail_settings.from_address
    assert message["From"].addresses[0].display_name == mail_settings.organisation_name
    assert message["Reply-To"] == "partnerships@example.org"
    assert message["To"].addresses[0].addr_spec == "reader3@example.org"
    assert message["To"].addresses[0].display_name == "Amina Diallo"
    assert message["Subject"] == "NGO partners' newsletter, November 2026"
    assert message["Date"].datetime == NOW
    assert re.fullmatch(r"<[\w.]+@diffusion\.example\.org>", message["Message-ID"])
    assert message["List-Id"] == "<liaison-committee-en-monthly.partners.diffusion.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = [part.strip() for part in message["List-Unsubscribe"].split(",")]
    assert https.startswith("<https://diffusion.example.org/unsubscribe/")
    token, _, query = https.removesuffix(">").rsplit("/", 1)[1].partition("?")
    assert read_token("test-secret-key-for-signing-links", "unsubscribe", token)["sub"] == 3
    assert query == "cadence=monthly"  # it leaves the subscriptions this email covers
    # The mailto: address names the recipient, signed (diffusion/bounces/verp.py).
    address = mailto.removeprefix("<mailto:").removesuffix("?subject=unsubscribe>")
    claim = verp.claim_of_address(mail_settings, mail_settings.signing_key(), address)
    assert claim == verp.Claim(verp.UNSUBSCRIBE_PURPOSE, 3)

    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert [text.get_content_type(), html.get_content_type()] == ["text/plain", "text/html"]
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    # The text part: lines holding a placeholder are wrapped once filled.
    assert text.get_content().replace("\r\n", "\n") == fill_text(EDITION_TEXT, values)
    assert "Dear Amina Diallo," in text.get_content()
    assert f'href="{values["unsubscribe_url"]}"' in html.get_content()
    assert "[[diffusion:" not in data.decode("ascii")  # every placeholder filled, 7-bit clean
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_each_recipient_gets_a_distinct_message_id_stable_across_retries(
    mail_settings: Settings,
) -> None:
    template = MessageTemplate.from_edition(edition(), mail_settings, now=NOW)
    ids = {parse(template.personalise(reader(n)))["Message-ID"] for n in range(1, 50)}
    assert len(ids) == 49
    again = MessageTemplate.from_edition(edition(), mail_settings, now=NOW)
    assert again.message_id(reader(5)) == template.message_id(reader(5))


def test_names_and_subjects_cannot_inject_headers(mail_settings: Settings) -> None:
    evil = edition(subject="Monthly news\r\nBcc: everyone@example.org\nX-Evil: 1")
    template = MessageTemplate.from_edition(evil, mail_settings, now=NOW)
    data = template.personalise(reader(name="Eve\r\nBcc: victim@example.org\n\nbody"))
    message = parse(data)
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert message["Subject"] == "Monthly news Bcc: everyone@example.org X-Evil: 1"
    assert [a.addr_spec for a in message["To"].addresses] == ["reader3@example.org"]
    assert message["To"].addresses[0].display_name == "Eve Bcc: victim@example.org body"
    headers = data.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in headers.split(b"\r\n") if line[:1] not in b" \t"]
    assert b"Bcc" not in names and b"X-Evil" not in names
    with pytest.raises(InvalidInput, match="cannot be used"):
        template.personalise(reader(email="a@example.org\r\nBcc: b@example.org"))


def test_non_ascii_subjects_and_names_are_encoded_words(mail_settings: Settings) -> None:
    subject = "Lettre d'information des ONG partenaires : décembre, été — مرحبا"
    template = MessageTemplate.from_edition(edition(subject=subject), mail_settings, now=NOW)
    data = template.personalise(reader(name="Zoë Ndiaye-Müller"))
    data.decode("ascii")  # headers are 7-bit: RFC 2047 words
    message = parse(data)
    assert message["Subject"] == subject
    assert message["To"].addresses[0].display_name == "Zoë Ndiaye-Müller"


def test_placeholders_survive_quoted_printable_wherever_they_fall(
    mail_settings: Settings,
) -> None:
    rng = random.Random(2026)
    alphabet = "ab cdé\t=.\n" + "x" * 20 + "مر" + " "
    fields = ["greeting", "name", "email", "unsubscribe_url", "preferences_url"]
    for round_ in range(60):
        pieces = []
        for _ in range(rng.randint(1, 12)):
            pieces.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))))
            pieces.append(f"[[diffusion:{rng.choice(fields)}]]")
        text = "".join(pieces)
        name = "".join(rng.choice("Zoë é=x. ") for _ in range(rng.randint(0, 120)))
        template = MessageTemplate.from_edition(edition(text=text), mail_settings, now=NOW)
        subscriber = reader(round_ + 1, name=name)
        values = template.values(subscriber)  # links are signed with a timestamp: fix them
        data = template.fill(subscriber, values)
        body = data.split(b"\r\n\r\n", 1)[1]
        assert max(len(line) for line in body.split(b"\r\n")) <= 76
        # Wire-ready, as the SMTP transport sends it: what aiosmtplib's DATA would rewrite
        # (line ends, a leading "." to double) is never there.
        assert template.wire_ready
        assert normalize_message_line_endings(data) == data
        assert not PERIOD_REGEX.search(data)
        part = next(iter(parse(data).iter_parts()))
        expected = fill_text(text, values)
        assert part.get_content().replace("\r\n", "\n") == expected


def test_greeting_follows_the_reader_language(mail_settings: Settings) -> None:
    french = dataclasses.replace(reader(name="Amina"), language="fr")
    template = MessageTemplate.from_edition(edition(), mail_settings, now=NOW)
    assert template.values(french)["greeting"] == greeting("fr", "Amina") == "Bonjour Amina,"


def _dkim_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    import base64

    return key, base64.b64encode(public)


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(tmp_path: Path) -> None:
    key, public = _dkim_key(tmp_path)
    settings = load_settings(
        home=tmp_path,
        secret_key="test-secret-key-for-signing-links",
        dkim_domain="diffusion.example.org",
        dkim_selector="news",
        dkim_private_key_file=key,
    )
    data = MessageTemplate.from_edition(edition(), settings, now=NOW).personalise(reader())

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news._domainkey.diffusion.example.org."
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(data, dnsfunc=dns)
    signed = parse(data)["DKIM-Signature"].replace(" ", "").replace("\r\n", "")
    covered = re.search(r"h=([^;]+)", signed)
    assert covered is not None
    headers = covered.group(1).lower().split(":")
    for name in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post"):
        assert name in headers
    tampered = data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"X: y")
    assert not dkim.verify(tampered, dnsfunc=dns)


def confirmation(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "newsletter@diffusion.example.org"
    message["To"] = to
    message["Subject"] = "Confirm your subscription"
    message.set_content("Please confirm: https://diffusion.example.org/confirm/abc")
    return message


async def test_send_one_without_smtp_writes_to_the_maildir(mail_settings: Settings) -> None:
    await send_one(mail_settings, confirmation("amina@example.org"))
    box = mailbox.Maildir(mail_settings.outbox_dir, create=False)
    [stored] = list(box)
    assert stored["To"] == "amina@example.org"
    assert "Please confirm" in stored.get_payload()


async def test_send_one_over_smtp_and_a_refusal_raises(
    tmp_path: Path, smtp_server: RecordingServer
) -> None:
    settings = load_settings(
        home=tmp_path, secret_key="k-for-signing-links-0123456789ab", smtp_url=smtp_server.url
    )
    await send_one(settings, confirmation("amina@example.org"))
    assert smtp_server.deliveries() == {"amina@example.org": 1}

    smtp_server.rcpt_reply = lambda a: "550 5.1.1 no such user" if a.startswith("gone") else None
    with pytest.raises(DeliveryError, match="gone@example.org: 550 5.1.1 no such user"):
        await send_one(settings, confirmation("gone@example.org, kept@example.org"))
    assert smtp_server.deliveries()["kept@example.org"] == 1  # partly refused: the rest went

    smtp_server.rcpt_reply = lambda a: "451 4.3.0 try later"
    with pytest.raises(DeliveryError, match="451"):
        await send_one(settings, confirmation("later@example.org"))


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_a_long_segment_keeps_list_id_on_one_plain_line(mail_settings: Settings) -> None:
    long_ids = [
        Segment(
            "liaison_committee",
            sectors=("ED", "SC", "CI", "CLT", "SHS"),
            themes=("libraries", "reading", "open-science", f"theme-{n}"),
        ).id
        for n in range(2)
    ]
    found = []
    for segment in long_ids:
        narrowed = edition()
        narrowed.segment = segment
        data = MessageTemplate.from_edition(narrowed, mail_settings, now=NOW).personalise(reader())
        lines = [line for line in header_lines(data) if line.startswith(b"List-Id:")]
        assert len(lines) == 1 and b"=?" not in lines[0]
        assert len(lines[0]) <= 78
        found.append(parse(data)["List-Id"])
        assert found[-1].endswith(".partners.diffusion.example.org>")
    assert found[0] != found[1]  # cut short, yet still telling the segments apart


def test_no_header_line_passes_998_octets_and_names_lose_their_control_characters(
    mail_settings: Settings,
) -> None:
    # 200 characters of four UTF-8 bytes each: as one RFC 2047 word, a line of over 1,000.
    long_name = "\U0002070e\U00020779\U00020c53" * 60 + " Diallo"
    template = MessageTemplate.from_edition(edition(), mail_settings, now=NOW)
    data = template.personalise(reader(name=long_name))
    assert max(len(line) for line in header_lines(data)) <= 998
    shown = parse(data)["To"].addresses[0].display_name
    first, last = shown.split()
    assert len(first) == 40 and long_name.startswith(first)  # cut, never garbled
    assert last == "Diallo"

    shifty = template.personalise(reader(name="Amina\x00 Diallo\x1b[31m\u202e\x7f"))
    display = parse(shifty)["To"].addresses[0].display_name
    assert display == "Amina Diallo [31m"
