"""Two processes running the monthly job at once on one database: one edition, one email each."""

import mailbox
import os
import subprocess
import sys
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.config import Settings
from diffusion.models import Edition, OutboxMessage
from diffusion.subscriptions import add_subscriber
from tests import digest_dataset
from tests.people import RULES
from tests.smtpserver import RecordingServer, smtp_server

__all__ = ["smtp_server"]

DIFFUSION = str(Path(sys.executable).with_name("diffusion"))
# Several segments (audiences, keys, languages), several subscribers in each.
PEOPLE = [
    *[("public", "", "en") for _ in range(12)],
    *[("public", "", "fr") for _ in range(8)],
    *[("sector", "ED", "en") for _ in range(6)],
    *[("member_state", "KE", "fr") for _ in range(5)],
    *[("ngo", "ifla", "en") for _ in range(5)],
    *[("liaison_committee", "", "en") for _ in range(4)],
]


def _store(engine: Engine) -> list[str]:
    digest_dataset.store(engine)
    addresses = []
    with db.session_scope(engine) as session:
        for number, (audience, key, language) in enumerate(PEOPLE):
            address = f"reader{number}@example.org"
            add_subscriber(
                session,
                email=address,
                name=f"Reader {number}",
                language=language,
                audience=audience,
                key=key,
                now=digest_dataset.NOW,
                rules=RULES,
            )
            addresses.append(address)
    return addresses


def _run_twice_at_once(settings: Settings, extra_env: dict[str, str]) -> None:
    env = {
        **os.environ,
        "DIFFUSION_HOME": str(settings.home),
        "DIFFUSION_DATABASE_URL": settings.database,
        "DIFFUSION_SECRET_KEY": "exactly-once-for-signing-links-0123456789",
        **extra_env,
    }
    command = [DIFFUSION, "jobs", "run", "monthly", "--period", "2026-11"]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0].decode() for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output


def _check_database(engine: Engine, subscribers: int) -> None:
    with engine.connect() as connection:
        editions = connection.execute(
            sa.select(Edition.segment, Edition.period, Edition.status)  # type: ignore[call-overload]
        ).all()
        rows = connection.execute(
            sa.select(OutboxMessage.state, sa.func.count()).group_by(OutboxMessage.state)  # type: ignore[call-overload]
        ).all()
    segments = Counter((segment, period) for segment, period, _ in editions)
    assert segments and set(segments.values()) == {1}
    assert {status for _, _, status in editions} <= {"sent", "empty"}
    assert dict(rows) == {"sent": subscribers}


@pytest.mark.postgres
def test_two_processes_send_each_subscriber_one_message_over_smtp(
    settings: Settings, engine: Engine, smtp_server: RecordingServer
) -> None:
    addresses = _store(engine)
    test_relay = {"DIFFUSION_SMTP_URL": smtp_server.url, "DIFFUSION_ALLOW_TEST_SETTINGS": "true"}
    _run_twice_at_once(settings, test_relay)
    assert smtp_server.deliveries() == Counter(dict.fromkeys(addresses, 1))
    _check_database(engine, len(addresses))
    # What arrived is the newsletter of the month, in each reader's language.
    for address, language, month in (
        ("reader12", "fr", "novembre 2026"),
        ("reader0", "en", "November 2026"),
    ):
        (mail,) = smtp_server.messages_to(f"{address}@example.org")
        assert month in str(mail["Subject"]), mail["Subject"]
        html = mail.get_body(("html",))
        assert html is not None and f'<html lang="{language}"' in str(html.get_content())


@pytest.mark.postgres
def test_two_processes_write_each_subscriber_one_message_to_the_maildir(
    settings: Settings, engine: Engine
) -> None:
    addresses = _store(engine)
    _run_twice_at_once(settings, {})
    box = mailbox.Maildir(settings.outbox_dir, create=False)
    recipients = Counter(
        str(message_from_bytes(box.get_bytes(key), policy=policy.default)["To"])
        for key in box.keys()
    )
    assert Counter(
        {address.split("<")[-1].rstrip(">"): n for address, n in recipients.items()}
    ) == (Counter(dict.fromkeys(addresses, 1)))
    _check_database(engine, len(addresses))
