"""Subscriptions that hold: one person with several subscriptions, consent that survives every
import, private audiences by approval, safe pending state; through the real web app, the real
send job (maildir and SMTP) and the CLI, on SQLite and PostgreSQL."""

import functools
import json
import mailbox
import os
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from digest_dataset import _item, store
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from diffusion import db, subscriptions
from diffusion.cli import cli
from diffusion.config import Settings
from diffusion.deliver import send_pending
from diffusion.editions import build_editions
from diffusion.models import (
    ConsentEvent,
    Edition,
    Item,
    OutboxMessage,
    Person,
    Subscription,
    Suppression,
)
from diffusion.runtime import Runtime
from diffusion.select.directory import read_directory
from diffusion.select.rules import load_rules
from diffusion.subscriptions import import_subscribers
from diffusion.tokens import make_token
from diffusion.web import create_app
from tests.people import RULES
from tests.smtpserver import RecordingServer, make_edition, smtp_server

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["smtp_server"]
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
SECRET = "test-secret-key-for-signing-links"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HEADER = "email,name,language,audience,key\n"


def _extra() -> list[Item]:
    """Items of November beside the digest dataset's: who may read which is the point."""
    return [
    _item(101, "private-ed-bd", "ngo_action", 14, public=False,
          tags={"sectors": ["ED"], "countries": ["BD"]}),
    _item(102, "public-ed-bd", "ngo_action", 15, tags={"sectors": ["ED"], "countries": ["BD"]}),
    _item(103, "liaison-only-plan", "ngo_plan", 16, public=False, tags={"themes": ["governance"]}),
    _item(104, "ifla-own-private-plan", "ngo_plan", 17, public=False,
          tags={"organisations": ["ifla"], "sectors": ["CI"]}),
    ]  # fmt: skip


PRIVATE_TITLES = (
    "Private ed bd",
    "Liaison only plan",
    "Ifla own private plan",
    "Medellin private",
    "Icsc private ke",
)


@pytest.fixture
def world(engine: Engine) -> Engine:
    """The digest dataset's directory and items, and the items above."""
    store(engine, extra_items=_extra())
    return engine


def _csv(tmp_path: Path, *rows: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def _person(engine: Engine, email: str) -> Person:
    with Session(engine) as session:
        found = subscriptions.find_person(session, email)
        assert found is not None, email
        return found


def _held(engine: Engine, email: str) -> dict[str, str]:
    """{audience[:key]: status} of the person's subscriptions."""
    with Session(engine) as session:
        person = subscriptions.find_person(session, email)
        assert person is not None
        return {
            f"{s.audience}:{s.key}" if s.key else s.audience: s.status
            for s in subscriptions.subscriptions_of(session, person)
        }


def _mails(settings: Settings) -> list[EmailMessage]:
    if not settings.outbox_dir.exists():
        return []
    box = mailbox.Maildir(settings.outbox_dir, create=False)
    return [
        cast(EmailMessage, message_from_bytes(box.get_bytes(key), policy=policy.default))
        for key in sorted(box.keys())
    ]


def _newsletters(settings: Settings, address: str) -> list[str]:
    """The plain text of every edition mailed to the address (not the confirmations)."""
    found = []
    for mail in _mails(settings):
        if mail["To"] and address in str(mail["To"]) and not mail["Auto-Submitted"]:
            body = mail.get_body(("plain",))
            assert body is not None
            found.append(str(body.get_content()))
    return found


def _confirmations(settings: Settings, address: str) -> list[str]:
    links = []
    for mail in _mails(settings):
        if address in str(mail["To"]) and mail["Auto-Submitted"]:
            body = mail.get_body(("plain",))
            assert body is not None
            match = re.search(r"http://\S+/confirm/\S+", str(body.get_content()))
            if match:
                links.append(match.group(0).split("127.0.0.1:8080", 1)[1])
    return links


def _subscribe(client: TestClient, email: str, audience: str, key: str = "", **extra: str) -> None:
    token = CSRF.search(client.get("/").text).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": token, "email": email, "audience": audience, "key": key}
    answer = client.post("/subscribe", data={"language": "en", **form, **extra})
    assert answer.status_code == 200, answer.text


def _confirm(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    token = CSRF.search(page.text)
    assert token, page.text
    answer = client.post(path, data={"csrf_token": token.group(1)})
    assert answer.status_code == 200, answer.text
    return answer.text


def _send_month(engine: Engine, settings: Settings, now: datetime = NOW) -> None:
    build_editions(engine, settings, rules=load_rules(settings.routing), now=now, period="2026-11")
    send_pending(engine, settings, now=now)


@pytest.fixture
def client(settings: Settings, world: Engine) -> Iterator[TestClient]:
    with TestClient(
        create_app(Runtime(settings, engine=world)), follow_redirects=False
    ) as test_client:
        yield test_client


# --- consent that holds ---------------------------------------------------------------------


def test_one_click_unsubscribe_then_reimport_stays_unsubscribed(
    settings: Settings, world: Engine, tmp_path: Path
) -> None:
    path = _csv(tmp_path, "reader@example.org,Reader,en,public,", "other@example.org,O,en,public,")
    with db.session_scope(world) as session:
        assert import_subscribers(session, path, now=NOW, secret=SECRET, rules=RULES).created == 2
    person = _person(world, "reader@example.org")
    unsubscribe = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', person.id or 0)}"
    with TestClient(
        create_app(Runtime(settings, engine=world))
    ) as mail_client:  # a mail client, RFC 8058
        assert mail_client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code
    assert _person(world, "reader@example.org").status == "unsubscribed"

    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", settings.database]
    result = runner.invoke(cli, [*base, "subscribers", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 skipped" in result.output
    assert f"{path}:2: suppressed, not imported: reader@example.org is unsubscribed" in (
        result.output.replace("\n", " ")
    )
    assert _person(world, "reader@example.org").status == "unsubscribed"
    assert _held(world, "reader@example.org") == {"public": "left"}
    # Nor does an editor's addition bring them back.
    added = runner.invoke(
        cli, [*base, "subscribers", "add", "reader@example.org", "--audience", "public"]
    )
    assert added.exit_code == 1 and "unsubscribed" in added.output
    _send_month(world, settings)
    assert _newsletters(settings, "reader@example.org") == []
    assert len(_newsletters(settings, "other@example.org")) == 1


def test_a_550_at_send_time_is_a_hard_bounce_that_a_reimport_keeps(
    settings: Settings, engine: Engine, smtp_server: RecordingServer, tmp_path: Path
) -> None:
    path = _csv(
        tmp_path,
        "gone@example.org,Gone,en,liaison_committee,",
        "full@example.org,Full,en,liaison_committee,",
        "here@example.org,Here,en,liaison_committee,",
    )
    with db.session_scope(engine) as session:
        import_subscribers(session, path, now=NOW, secret=SECRET, rules=RULES)
        make_edition(session)
    smtp_server.rcpt_reply = lambda address: {
        "gone@example.org": "550 5.1.1 <gone@example.org>: no such user",
        "full@example.org": "552 5.3.4 message too big for this system",
    }.get(address)
    config = settings.replace(smtp_url=smtp_server.url)
    send_pending(engine, config, now=NOW)
    assert _person(engine, "gone@example.org").status == "bounced"
    # A refusal of the message (not of the recipient) is not a bounce of the person.
    assert _person(engine, "full@example.org").status == "active"
    assert _person(engine, "here@example.org").status == "active"
    with Session(engine) as session:
        event = session.exec(select(ConsentEvent).where(ConsentEvent.to_status == "bounced")).one()
    assert (event.origin, event.action) == ("send", "bounce")
    assert "5.1.1" in event.detail
    with db.session_scope(engine) as session:
        report = import_subscribers(
            session, path, now=NOW + timedelta(days=1), secret=SECRET, rules=RULES
        )
    assert len(report.skipped) == 1 and report.skipped[0].startswith(f"{path}:2: suppressed")
    assert _person(engine, "gone@example.org").status == "bounced"


@pytest.mark.parametrize(
    ("reply", "refused"),
    [
        ("550 5.1.1 no such user", True),
        ("550-5.1.1 The email account that you tried to reach does not exist", True),
        ("550 5.2.1 mailbox disabled", True),
        ("554 5.7.1 <x@example.org>: Recipient address rejected: Access denied", True),
        ("553 sorry, that domain isn't in my list of allowed rcpthosts", True),
        ("552 5.3.4 message too big", False),
        ("554 5.6.0 message content rejected", False),
        ("451 4.7.1 greylisted", False),
        ("550 5.1.10 null MX", True),
    ],
)
def test_only_recipient_refusals_are_bounces(reply: str, refused: bool) -> None:
    assert subscriptions.is_recipient_refusal(reply) is refused


def test_an_erased_address_is_kept_out_of_imports_by_its_keyed_hash(
    settings: Settings, world: Engine, tmp_path: Path
) -> None:
    path = _csv(tmp_path, "erase.me@example.org,E,en,public,")
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", settings.database]
    assert runner.invoke(cli, [*base, "subscribers", "import", str(path)]).exit_code == 0
    old_id = _person(world, "erase.me@example.org").id
    erased = runner.invoke(cli, [*base, "subscribers", "erase", "erase.me@example.org"])
    assert erased.exit_code == 0, erased.output
    with Session(world) as session:
        assert session.exec(select(Person)).all() == []
        assert session.exec(select(ConsentEvent)).all() == []
        (kept,) = session.exec(select(Suppression)).all()
    assert "erase.me" not in kept.address_hash and len(kept.address_hash) == 64
    again = runner.invoke(cli, [*base, "subscribers", "import", str(path)])
    assert "0 subscriptions created" in again.output and "1 skipped" in again.output
    assert "is erased" in again.output
    with db.session_scope(world) as session:
        # The person's own opt-in still can: a new person, with an id never given before.
        wish = subscriptions.Request(
            email="erase.me@example.org", name="", language="en", audience="public", key=""
        )
        origin = subscriptions.Origin.web("en")
        asked = subscriptions.request(session, wish, origin=origin, now=NOW)
        assert asked.person.id is not None and old_id is not None
        assert asked.person.id > old_id
    # The old preferences link names nobody now.
    with TestClient(create_app(Runtime(settings, engine=world))) as web:
        stale = web.get(f"/preferences/{make_token(SECRET, 'preferences', old_id)}")
        assert stale.status_code == 400


def test_an_erased_address_stays_out_after_the_key_is_rotated(
    settings: Settings, world: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _csv(tmp_path, "erase.me@example.org,E,en,public,")
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", settings.database]
    assert runner.invoke(cli, [*base, "subscribers", "import", str(path)]).exit_code == 0
    assert (
        runner.invoke(cli, [*base, "subscribers", "erase", "erase.me@example.org"]).exit_code == 0
    )
    # A new key signs; the old one still verifies, and still recognises what it hashed.
    old = os.environ["DIFFUSION_SECRET_KEY"]
    monkeypatch.delenv("DIFFUSION_SECRET_KEY")
    monkeypatch.setenv("DIFFUSION_SECRET_KEYS", f"a-new-key-after-rotation-0123456789 {old}")
    again = runner.invoke(cli, [*base, "subscribers", "import", str(path)])
    assert "is erased" in again.output and "1 skipped" in again.output, again.output
    with Session(world) as session:
        assert session.exec(select(Person)).all() == []


# --- private audiences by approval ------------------------------------------------------------


@pytest.mark.parametrize(
    ("audience", "key"),
    [("liaison_committee", ""), ("sector", "ED"), ("ngo", "ifla")],
)
def test_a_stranger_gets_no_private_item_until_an_editor_approves(
    settings: Settings, world: Engine, client: TestClient, audience: str, key: str, tmp_path: Path
) -> None:
    page = client.get("/").text
    assert "needs an editor" in page  # the form says which choices need approval
    _subscribe(client, "stranger@elsewhere.example", audience, key)
    _subscribe(client, "public@example.org", "public")
    assert "awaiting approval" in _confirm(client, _confirmations(settings, "stranger")[0])
    assert "Thank you" in _confirm(client, _confirmations(settings, "public@example.org")[0])
    label = f"{audience}:{key}" if key else audience
    assert _held(world, "stranger@elsewhere.example") == {label: "awaiting_approval"}
    assert _held(world, "public@example.org") == {"public": "active"}

    _send_month(world, settings)
    assert _newsletters(settings, "stranger@elsewhere.example") == []
    (public,) = _newsletters(settings, "public@example.org")  # the public newsletter as before
    assert "Ifla reading bd" in public and "Public ed bd" in public
    assert not any(title in public for title in PRIVATE_TITLES)

    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", settings.database]
    waiting = runner.invoke(
        cli, [*base, "subscribers", "list", "--status", "awaiting_approval", "--format", "json"]
    )
    assert [row["email"] for row in json.loads(waiting.output)] == ["stranger@elsewhere.example"]
    approved = runner.invoke(cli, [*base, "subscribers", "approve", "stranger@elsewhere.example"])
    assert approved.exit_code == 0 and "Approved 1" in approved.output
    _send_month(world, settings, NOW + timedelta(hours=1))
    (approved_mail,) = _newsletters(settings, "stranger@elsewhere.example")
    assert any(title in approved_mail for title in PRIVATE_TITLES), approved_mail


def test_the_routing_rules_approve_their_domains_at_once(
    settings: Settings, world: Engine, client: TestClient
) -> None:
    _subscribe(client, "desk@ed.unesco.org", "sector", "ED")
    _confirm(client, _confirmations(settings, "desk@ed.unesco.org")[0])
    assert _held(world, "desk@ed.unesco.org") == {"sector:ED": "active"}
    _subscribe(client, "desk@unesco.org.example.net", "sector", "ED")
    _confirm(client, _confirmations(settings, "desk@unesco.org.example.net")[0])
    assert _held(world, "desk@unesco.org.example.net") == {"sector:ED": "awaiting_approval"}


# --- one newsletter per person ----------------------------------------------------------------


def test_two_subscriptions_one_newsletter_each_item_once_then_leave_one(
    settings: Settings, world: Engine, client: TestClient, tmp_path: Path
) -> None:
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", settings.database]
    officer = "officer@natcom.example.org"
    for audience, key in (("national_commission", "BD"), ("sector", "ED")):
        added = runner.invoke(
            cli, [*base, "subscribers", "add", officer, "--audience", audience, "--key", key]
        )
        assert added.exit_code == 0, added.output
    listed = runner.invoke(cli, [*base, "subscribers", "list", "--format", "json"])
    assert [(r["audience"], r["key"]) for r in json.loads(listed.output)] == [
        ("national_commission", "BD"),
        ("sector", "ED"),
    ]
    shown = runner.invoke(cli, [*base, "subscribers", "show", officer])
    assert "national_commission" in shown.output and "sector" in shown.output

    _send_month(world, settings)
    (mail,) = _newsletters(settings, officer)
    # Both subscriptions' items: Bangladesh's NGO actions, the Education Sector's (private too).
    assert "Ifla reading bd" in mail and "Private ed bd" in mail
    assert mail.count("Public ed bd") == 1  # brought by both, shown once
    assert "Bangladesh" in mail and "Education" in mail  # grouped by why it reached the reader
    with Session(world) as session:
        (edition,) = session.exec(select(Edition).where(Edition.segment.contains("+"))).all()  # type: ignore[attr-defined]
        assert edition.audience == "national_commission"  # never listed as public

    # Leaving one keeps the other, from the preferences page.
    person = _person(world, officer)
    path = f"/preferences/{make_token(SECRET, 'preferences', person.id or 0)}"
    page = client.get(path).text
    assert page.count('class="leave"') == 2
    with Session(world) as session:
        sector = session.exec(select(Subscription).where(Subscription.audience == "sector")).one()
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    left = client.post(
        path, data={"csrf_token": token, "action": "leave", "subscription": str(sector.id)}
    )
    assert left.status_code == 200 and "your other subscriptions are unchanged" in left.text
    assert _held(world, officer) == {"national_commission:BD": "active", "sector:ED": "left"}
    assert _person(world, officer).status == "active"
    # The subscription left is not brought back by an import either.
    again = _csv(tmp_path, f"{officer},,en,sector,ED", name="again.csv")
    imported = runner.invoke(cli, [*base, "subscribers", "import", str(again)])
    assert f"{again}:2: suppressed, not imported: {officer} left sector:ED" in imported.output
    assert _held(world, officer)["sector:ED"] == "left"
    _send_month(world, settings, NOW + timedelta(hours=1))
    mails = _newsletters(settings, officer)
    (later,) = [text for text in mails if text != mail]
    assert "Private ed bd" not in later and "Ifla reading bd" in later


def test_one_click_leaves_every_subscription_the_email_covers(
    settings: Settings, world: Engine, client: TestClient
) -> None:
    with db.session_scope(world) as session:
        for audience, key, cadence in (
            ("national_commission", "BD", "monthly"),
            ("public", "", "monthly"),
            ("sector", "ED", "weekly"),
        ):
            values = {"email": "many@example.org", "audience": audience, "key": key}
            subscriptions.add(
                session,
                {**values, "cadence": cadence},
                origin=subscriptions.Origin.cli("test"),
                now=NOW,
                secret=SECRET,
            )
    _send_month(world, settings)
    (mail,) = [m for m in _mails(settings) if "many@example.org" in str(m["To"])]
    target = re.search(r"<(http://[^>]+/unsubscribe/[^>]+)>", str(mail["List-Unsubscribe"]))
    assert target is not None
    path = target.group(1).split("127.0.0.1:8080", 1)[1]
    with TestClient(create_app(Runtime(settings, engine=world))) as mail_client:
        answer = mail_client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200
    held = _held(world, "many@example.org")
    assert held["national_commission:BD"] == held["public"] == "left"
    # The weekly digest is another email, with its own link: it goes on.
    assert "cadence=monthly" in path and held["sector:ED"] == "active"
    assert _person(world, "many@example.org").status == "active"


# --- safe pending state -----------------------------------------------------------------------


def test_a_second_request_for_a_pending_address_changes_nothing_stored(
    settings: Settings, world: Engine, client: TestClient
) -> None:
    _subscribe(client, "owner@example.org", "public", name="Owner", language="en")
    first = _confirmations(settings, "owner@example.org")[0]
    before = _person(world, "owner@example.org")
    _subscribe(client, "owner@example.org", "liaison_committee", name="Intruder", language="fr")
    after = _person(world, "owner@example.org")
    assert (after.name, after.language, after.status) == ("Owner", "en", "pending")
    assert after.status_changed_at == before.status_changed_at
    assert _held(world, "owner@example.org") == {"public": "pending"}
    # The owner's own link confirms what the owner asked for.
    _confirm(client, first)
    assert _held(world, "owner@example.org") == {"public": "active"}
    assert _person(world, "owner@example.org").name == "Owner"
    # The second request went to the owner's mailbox; only confirming it would apply it.
    assert len(_confirmations(settings, "owner@example.org")) == 2


def test_a_link_mailed_before_an_unsubscribe_cannot_bring_the_person_back(
    settings: Settings, world: Engine, client: TestClient
) -> None:
    _subscribe(client, "late@example.org", "public")
    _confirm(client, _confirmations(settings, "late@example.org")[0])
    _subscribe(client, "late@example.org", "national_commission", "BD")
    pending_link = _confirmations(settings, "late@example.org")[1]
    person = _person(world, "late@example.org")
    with db.session_scope(world) as session:
        found = session.get(Person, person.id)
        assert found is not None
        subscriptions.unsubscribe(
            session, found, origin=subscriptions.Origin.web("en"), now=datetime.now(UTC)
        )
    assert client.get(pending_link).status_code == 400
    token = CSRF.search(client.get("/").text).group(1)  # type: ignore[union-attr]
    assert client.post(pending_link, data={"csrf_token": token}).status_code == 400
    assert _person(world, "late@example.org").status == "unsubscribed"


def test_a_used_confirmation_link_cannot_resubscribe_after_an_unsubscribe(
    settings: Settings, world: Engine, client: TestClient
) -> None:
    _subscribe(client, "back@example.org", "public")
    (used,) = _confirmations(settings, "back@example.org")
    _confirm(client, used)
    assert _held(world, "back@example.org") == {"public": "active"}
    person = _person(world, "back@example.org")
    unsubscribe = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', person.id or 0)}"
    assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _person(world, "back@example.org").status == "unsubscribed"
    # The spent link, followed again (a browser's history, a forwarded mail), is refused.
    assert client.get(used).status_code == 400
    token = CSRF.search(client.get("/").text).group(1)  # type: ignore[union-attr]
    assert client.post(used, data={"csrf_token": token}).status_code == 400
    assert _person(world, "back@example.org").status == "unsubscribed"
    assert _held(world, "back@example.org") == {"public": "left"}
    _send_month(world, settings)
    assert _newsletters(settings, "back@example.org") == []
    # A new request, confirmed, is the way back.
    _subscribe(client, "back@example.org", "public")
    (fresh,) = [link for link in _confirmations(settings, "back@example.org") if link != used]
    _confirm(client, fresh)
    assert _person(world, "back@example.org").status == "active"
    assert _held(world, "back@example.org") == {"public": "active"}


def test_confirming_refuses_a_link_made_before_the_person_left_whoever_calls_it(
    settings: Settings, world: Engine
) -> None:
    """The rule lives in the subscriptions module, not only on the web page that calls it."""
    wish = subscriptions.Request(
        email="left@example.org", name="", language="en", audience="public", key=""
    )
    origin = subscriptions.Origin.web("en", "confirm")
    with db.session_scope(world) as session:
        person = subscriptions.request(session, wish, origin=origin, now=NOW).person
        issued_at = NOW + timedelta(minutes=1)  # the link is made, then the person leaves
        subscriptions.unsubscribe(session, person, origin=origin, now=NOW + timedelta(minutes=2))
        confirm = functools.partial(
            subscriptions.confirm,
            session,
            person,
            wish,
            rules=load_rules(settings.routing),
            directory=read_directory(session),
            origin=origin,
            now=NOW + timedelta(minutes=3),
        )
        with pytest.raises(subscriptions.Suppressed, match="left@example.org is unsubscribed"):
            confirm(issued_at=issued_at)
        assert person.status == "unsubscribed"
        # A link made after they left is their own new opt-in.
        assert confirm(issued_at=NOW + timedelta(minutes=2, seconds=1)).status == "active"
        assert person.status == "active"


def test_never_confirmed_requests_are_purged_after_the_configured_days(
    settings: Settings, world: Engine, tmp_path: Path
) -> None:
    with db.session_scope(world) as session:
        for email, when in (
            ("old@example.org", NOW - timedelta(days=40)),
            ("new@example.org", NOW),
        ):
            wish = subscriptions.Request(
                email=email, name="", language="en", audience="public", key=""
            )
            subscriptions.request(session, wish, origin=subscriptions.Origin.web("en"), now=when)
        assert subscriptions.purge_pending(session, older_than=timedelta(days=30), now=NOW) == 1
    with Session(world) as session:
        assert [p.email for p in session.exec(select(Person))] == ["new@example.org"]
        assert len(session.exec(select(Subscription)).all()) == 1
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", settings.database]
    result = runner.invoke(cli, [*base, "subscribers", "purge-pending", "--days", "3650"])
    assert result.exit_code == 0 and "Purged 0" in result.output  # new@ is younger than that


# --- the person's data ------------------------------------------------------------------------


def test_export_person_gives_subscriptions_consent_and_messages(
    settings: Settings, world: Engine, tmp_path: Path
) -> None:
    path = _csv(tmp_path, "me@example.org,Me,fr,public,", "me@example.org,Me,fr,sector,ED")
    with db.session_scope(world) as session:
        import_subscribers(session, path, now=NOW, secret=SECRET, rules=RULES)
    _send_month(world, settings)
    runner = CliRunner()
    base = ["--home", str(tmp_path), "--database-url", settings.database]
    result = runner.invoke(cli, [*base, "subscribers", "export-person", "me@example.org"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    assert (data["email"], data["language"], data["status"]) == ("me@example.org", "fr", "active")
    assert [(s["audience"], s["key"]) for s in data["subscriptions"]] == [
        ("public", ""),
        ("sector", "ED"),
    ]
    assert {e["detail"] for e in data["consent"]} == {f"{path}:2", f"{path}:3"}
    assert [m["state"] for m in data["messages"]] == ["sent"]  # one newsletter for both
    with Session(world) as session:
        assert len(session.exec(select(OutboxMessage)).all()) == 1
