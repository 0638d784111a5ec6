"""The subscriber pages, feeds, archive and health check, through the real ASGI app."""

import mailbox
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy.engine import Engine

from diffusion import db, links, subscriptions
from diffusion.config import Settings, load_settings
from diffusion.models import Edition, FieldOffice, Organisation
from diffusion.personalise import placeholder
from diffusion.runtime import Runtime
from diffusion.subscriptions import add_subscriber
from diffusion.tokens import make_token
from diffusion.web import create_app
from diffusion.web.protection import RateLimiter
from tests.people import RULES

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KEY = "test-secret-key-for-signing-links"  # 32 bytes at least, as every key
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def local_settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return load_settings(home=tmp_path, database_url=sqlite_url, secret_key=KEY)


@pytest.fixture
def client(local_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(local_settings), follow_redirects=False) as test_client:
        yield test_client


def _engine(settings: Settings) -> Engine:
    return db.engine_for(settings)


def _subscriber(settings: Settings, email: str) -> SimpleNamespace | None:
    """The person with their first subscription's fields, as one old subscriber row read."""
    engine = _engine(settings)
    try:
        with db.session_scope(engine) as session:
            person = subscriptions.find_person(session, email)
            if person is None:
                return None
            first = subscriptions.subscriptions_of(session, person)[0]
            return SimpleNamespace(
                **{name: getattr(first, name) for name in ("sectors", "themes", "cadence")},
                **person.model_dump(),
                subscription_status=first.status,
            )
    finally:
        engine.dispose()


def _add(settings: Settings, email: str, status: str = "active", language: str = "en") -> int:
    engine = _engine(settings)
    try:
        with db.session_scope(engine) as session:
            subscriber = add_subscriber(
                session,
                email=email,
                name="Ada",
                language=language,
                audience="public",
                now=NOW,
                status=status,
                rules=RULES,
            )
            assert subscriber.id is not None
            return subscriber.id
    finally:
        engine.dispose()


def _directory(settings: Settings) -> None:
    """Two NGOs and a Field Office, whose themes are the themes in use."""
    engine = _engine(settings)
    try:
        with db.session_scope(engine) as session:
            session.add(
                Organisation(
                    slug="icae",
                    name="International Council for Adult Education",
                    acronym="ICAE",
                    themes=["lifelong-learning", "inclusion"],
                )
            )
            session.add(
                Organisation(
                    slug="ifla",
                    name="International Federation of Library Associations and Institutions",
                    acronym="IFLA",
                    themes=["libraries"],
                )
            )
            session.add(
                FieldOffice(code="dhaka", name="UNESCO Dhaka Office", city="Dhaka", country="BD")
            )
    finally:
        engine.dispose()


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    match = CSRF.search(page.text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def _mails(settings: Settings) -> list[EmailMessage]:
    if not settings.outbox_dir.exists():
        return []
    box = mailbox.Maildir(settings.outbox_dir, create=False)
    return [
        message_from_bytes(box.get_bytes(key), policy=policy.default)  # type: ignore[misc]
        for key in box.keys()
    ]


def _subscribe(client: TestClient, email: str, **fields: str) -> tuple[int, str]:
    token = _csrf(client, "/")
    form = {"csrf_token": token, "email": email, "audience": "public", "language": "en"}
    form.update(fields)
    response = client.post("/subscribe", data=form)
    return response.status_code, response.text


def _confirm_link(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(r"http://\S+/confirm/\S+", body.get_content())
    assert match, body.get_content()
    return match.group(0).split("127.0.0.1:8080", 1)[1]


def test_subscribe_sends_a_confirmation_and_confirming_activates(
    settings: Settings,
) -> None:
    with TestClient(create_app(settings)) as client:
        status, _ = _subscribe(client, "new.reader@example.org", language="fr", sectors="ED")
        assert status == 200
        pending = _subscriber(settings, "new.reader@example.org")
        assert pending is not None and pending.status == "pending"
        assert pending.consent_at is None and pending.sectors == ["ED"]
        (mail,) = _mails(settings)
        assert mail["To"] == "new.reader@example.org"
        assert mail["Subject"].startswith("Confirmez")  # in the language chosen
        path = _confirm_link(mail)

        page = client.get(path)  # a link scanner's GET confirms nothing
        assert page.status_code == 200 and 'lang="fr"' in page.text
        assert _subscriber(settings, "new.reader@example.org").status == "pending"  # type: ignore[union-attr]

        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        confirmed = client.post(path, data={"csrf_token": token})
        assert confirmed.status_code == 200 and "Abonnement confirmé" in confirmed.text
        active = _subscriber(settings, "new.reader@example.org")
        assert active is not None and active.status == "active"
        assert (
            active.consent_at is not None and active.status_changed_at > pending.status_changed_at
        )

        # The spent link now says it is confirmed, and changes nothing more.
        again = client.get(path)
        assert again.status_code == 200
        assert _subscriber(settings, "new.reader@example.org").consent_at == active.consent_at  # type: ignore[union-attr]


def test_the_answer_is_the_same_whether_the_address_is_known(
    client: TestClient, local_settings: Settings
) -> None:
    _add(local_settings, "known@example.org")
    known = _subscribe(client, "known@example.org")
    unknown = _subscribe(client, "unknown@example.org")
    assert known[0] == unknown[0] == 200
    assert known[1].replace("known@", "someone@") == unknown[1].replace("unknown@", "someone@")
    # An active subscriber is not put back to pending by someone else's request.
    assert _subscriber(local_settings, "known@example.org").status == "active"  # type: ignore[union-attr]
    # Both get a message: a link to confirm, or (already subscribed) to the preferences.
    mails = {str(m["To"]): m.get_body(("plain",)).get_content() for m in _mails(local_settings)}  # type: ignore[union-attr]
    assert set(mails) == {"known@example.org", "unknown@example.org"}
    assert "/confirm/" in mails["unknown@example.org"]
    assert (
        "/preferences/" in mails["known@example.org"]
        and "/confirm/" not in mails["known@example.org"]
    )


def test_expired_and_tampered_confirmation_links_get_400_and_change_nothing(
    client: TestClient, local_settings: Settings
) -> None:
    _subscribe(client, "late@example.org")
    path = _confirm_link(_mails(local_settings)[0])
    token = path.rsplit("/", 1)[1]

    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())

    claims = URLSafeTimedSerializer(KEY, salt="diffusion.confirm").loads(token)
    expired = URLSafeTimedSerializer(KEY, "diffusion.confirm", signer=Old).dumps(claims)
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    for bad in (expired, tampered, "not-a-token"):
        cookie_token = _csrf(client, "/")
        assert client.get(f"/confirm/{bad}").status_code == 400
        answer = client.post(f"/confirm/{bad}", data={"csrf_token": cookie_token})
        assert answer.status_code == 400
        assert _subscriber(local_settings, "late@example.org").status == "pending"  # type: ignore[union-attr]
    # An unsubscribe token is not a confirmation token.
    subscriber_id = _subscriber(local_settings, "late@example.org").id  # type: ignore[union-attr]
    other = make_token(KEY, "unsubscribe", subscriber_id)  # type: ignore[arg-type]
    assert client.get(f"/confirm/{other}").status_code == 400


def test_links_confirm_url_is_the_link_the_web_accepts(
    client: TestClient, local_settings: Settings
) -> None:
    subscriber_id = _add(local_settings, "pending@example.org", status="pending")
    subscriber = _subscriber(local_settings, "pending@example.org")
    assert subscriber is not None
    wish = subscriptions.Request(
        email="pending@example.org", name="Ada", language="en", audience="public", key=""
    )
    url = links.confirm_url(local_settings, subscriber_id, request=wish.claims(), issued_at=NOW)
    path = url.removeprefix(local_settings.base_url.rstrip("/"))
    assert path.startswith("/confirm/")
    page = client.get(path)
    assert page.status_code == 200 and "pending@example.org" in page.text
    answer = client.post(path, data={"csrf_token": _csrf(client, path)})
    assert answer.status_code == 200
    confirmed = _subscriber(local_settings, "pending@example.org")
    assert confirmed is not None and confirmed.status == "active"
    assert confirmed.status_changed_at != subscriber.status_changed_at
    # Once used, the same link only says so (no button): nothing changes again.
    again = client.get(path)
    assert again.status_code == 200 and "<button" not in again.text
    assert _subscriber(local_settings, "pending@example.org").consent_at == confirmed.consent_at  # type: ignore[union-attr]


def test_forms_without_a_valid_csrf_token_are_refused(
    client: TestClient, local_settings: Settings
) -> None:
    subscriber_id = _add(local_settings, "reader@example.org")
    path = f"/unsubscribe/{make_token(KEY, 'unsubscribe', subscriber_id)}"
    assert client.post(path, data={}).status_code == 403
    assert client.post(path, data={"csrf_token": "0" * 64}).status_code == 403
    assert client.post("/subscribe", data={"email": "x@example.org"}).status_code == 403
    # A token made for another browser's cookie does not fit this one.
    with TestClient(create_app(local_settings)) as other:
        foreign = _csrf(other, "/")
    _csrf(client, "/")
    assert client.post(path, data={"csrf_token": foreign}).status_code == 403
    assert _subscriber(local_settings, "reader@example.org").status == "active"  # type: ignore[union-attr]
    assert _mails(local_settings) == []


def test_unsubscribe_get_shows_a_button_and_post_unsubscribes(
    client: TestClient, local_settings: Settings
) -> None:
    subscriber_id = _add(local_settings, "leaving@example.org", language="fr")
    path = f"/unsubscribe/{make_token(KEY, 'unsubscribe', subscriber_id)}"
    page = client.get(path)
    assert page.status_code == 200 and 'lang="fr"' in page.text and "<button" in page.text
    assert _subscriber(local_settings, "leaving@example.org").status == "active"  # type: ignore[union-attr]
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    done = client.post(path, data={"csrf_token": token})
    assert done.status_code == 200 and "désabonné" in done.text
    gone = _subscriber(local_settings, "leaving@example.org")
    assert gone is not None and gone.status == "unsubscribed" and gone.status_changed_at > NOW


def test_one_click_unsubscribe_needs_no_csrf_and_answers_200(local_settings: Settings) -> None:
    subscriber_id = _add(local_settings, "oneclick@example.org")
    path = f"/unsubscribe/{make_token(KEY, 'unsubscribe', subscriber_id)}"
    # A mail client: no cookie, no page visited first (RFC 8058).
    with TestClient(create_app(local_settings), follow_redirects=False) as mail_client:
        answer = mail_client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200 and "location" not in answer.headers
        assert _subscriber(local_settings, "oneclick@example.org").status == "unsubscribed"  # type: ignore[union-attr]
        again = mail_client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert again.status_code == 200
        tampered = mail_client.post(path + "x", data={"List-Unsubscribe": "One-Click"})
        assert tampered.status_code == 400


def test_preferences_change_language_sectors_themes_and_cadence(
    client: TestClient, local_settings: Settings
) -> None:
    subscriber_id = _add(local_settings, "prefs@example.org")
    _directory(local_settings)
    path = f"/preferences/{make_token(KEY, 'preferences', subscriber_id)}"
    page = client.get(path)
    assert page.status_code == 200 and 'lang="en"' in page.text
    assert '<label for="language">' in page.text  # every field has its label
    # The themes offered are the ones in use, as checkboxes: no free text.
    assert 'name="themes" value="lifelong-learning"' in page.text
    assert '<input type="text" id="themes' not in page.text
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    form = {
        "csrf_token": token,
        "language": "fr",
        "sectors": ["ED", "CI"],
        "themes": ["lifelong-learning", "inclusion"],
        "cadence": "weekly",
    }
    saved = client.post(path, data=form)  # type: ignore[arg-type]
    assert saved.status_code == 200 and 'lang="fr"' in saved.text
    assert "Vos préférences sont enregistrées" in saved.text
    changed = _subscriber(local_settings, "prefs@example.org")
    assert changed is not None
    assert (changed.language, changed.cadence) == ("fr", "weekly")
    assert changed.sectors == ["ED", "CI"]
    assert changed.themes == ["lifelong-learning", "inclusion"]
    bad = client.post(path, data={**form, "sectors": "XX"})  # type: ignore[dict-item]
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    assert "Choisissez les Secteurs dans la liste" in bad.text  # the page is in French now
    assert _subscriber(local_settings, "prefs@example.org").sectors == ["ED", "CI"]  # type: ignore[union-attr]
    # A theme nothing carries would empty the digest: refused, pointing to the list.
    unused = client.post(path, data={**form, "themes": ["lifelong learning", "knitting"]})  # type: ignore[dict-item]
    assert unused.status_code == 400 and "Choisissez les thèmes dans la liste" in unused.text
    assert _subscriber(local_settings, "prefs@example.org").themes == [  # type: ignore[union-attr]
        "lifelong-learning",
        "inclusion",
    ]
    tampered = client.get(path[:-2])
    assert tampered.status_code == 400


def test_a_form_error_is_said_in_the_language_of_the_page(client: TestClient) -> None:
    # English pages name the value at fault, in the validators' words.
    status, page = _subscribe(client, "broken-address")
    assert status == 400 and "address &#39;broken-address&#39;" in page
    # A French page says what is wrong with the field in French.
    status, page = _subscribe(client, "broken-address", lang="fr")
    assert status == 400 and 'lang="fr"' in page
    assert "Cette adresse électronique ne peut pas être utilisée" in page
    assert "broken-address" in page  # still in the field, to correct
    status, page = _subscribe(client, "ok@example.org", lang="fr", audience="ngo", key="nobody")
    assert status == 400 and "choisissez dans la liste « ONG »" in page
    status, page = _subscribe(client, "ok@example.org", lang="fr", themes="<b>bold</b>")
    assert status == 400 and "Choisissez les thèmes dans la liste" in page


def test_language_from_query_then_accept_language(client: TestClient) -> None:
    assert 'lang="en"' in client.get("/").text
    assert 'lang="fr"' in client.get("/", headers={"Accept-Language": "fr-CA,en;q=0.5"}).text
    assert 'lang="en"' in client.get("/", headers={"Accept-Language": "de,en;q=0.8"}).text
    page = client.get("/?lang=fr", headers={"Accept-Language": "en"})
    assert 'lang="fr"' in page.text and "S&#39;abonner" in page.text
    assert page.headers["content-language"] == "fr"


def test_subscriptions_are_rate_limited_per_address_and_per_client(
    client: TestClient, local_settings: Settings
) -> None:
    limit = local_settings.subscribe.limit_per_address
    answers = [_subscribe(client, "flood@example.org")[0] for _ in range(limit + 1)]
    assert answers == [200] * limit + [429]
    assert len(_mails(local_settings)) == limit
    # Another address from the same client is still served, until the client's own limit.
    assert _subscribe(client, "other@example.org")[0] == 200
    remaining = local_settings.subscribe.limit_per_client - limit - 2
    for number in range(remaining):
        assert _subscribe(client, f"many{number}@example.org")[0] == 200
    assert _subscribe(client, "last@example.org")[0] == 429


def test_rate_limiter_window_slides() -> None:
    clock = [0.0]
    limiter = RateLimiter(2, window=60, clock=lambda: clock[0])
    assert limiter.allow("a") and limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")
    clock[0] = 61
    assert limiter.allow("a")


def test_feeds_are_served_with_validators_and_304(
    client: TestClient, local_settings: Settings
) -> None:
    feed = local_settings.feeds_dir / "sector" / "ED.en.atom"
    feed.parent.mkdir(parents=True, exist_ok=True)
    feed.write_text('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>')
    first = client.get("/feeds/sector/ED.en.atom")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/atom+xml")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert (
        client.get("/feeds/sector/ED.en.atom", headers={"If-None-Match": etag}).status_code == 304
    )
    by_date = client.get("/feeds/sector/ED.en.atom", headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304
    (local_settings.home / "secret.txt").write_text("no")
    for outside in ("/feeds/../secret.txt", "/feeds/%2e%2e/secret.txt", "/feeds/..%2fsecret.txt"):
        assert client.get(outside).status_code == 404, outside
    assert client.get("/feeds/sector/XX.en.atom").status_code == 404


def test_healthz_checks_the_database(client: TestClient, local_settings: Settings) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    engine = sa.create_engine(f"sqlite:///{local_settings.home}/no/such/folder/x.db")
    with TestClient(create_app(Runtime(local_settings, engine=engine))) as sick:
        answer = sick.get("/healthz")
        assert answer.status_code == 503 and answer.json()["status"] == "error"


def test_archive_lists_public_sent_editions_and_fills_placeholders(
    client: TestClient, local_settings: Settings
) -> None:
    html = (
        f"<html><body><p>{placeholder('greeting')}</p>"
        f'<a href="{placeholder("unsubscribe_url")}">unsubscribe</a>'
        f'<a href="{placeholder("preferences_url")}">preferences</a></body></html>'
    )
    engine = _engine(local_settings)
    with db.session_scope(engine) as session:
        editions = [
            Edition(
                segment="public|en|monthly",
                audience="public",
                period="2026-10",
                subject="Public October",
                html=html,
                status="sent",
                sent_at=NOW,
            ),
            Edition(
                segment="member_state:CO|en|monthly",
                audience="member_state",
                key="CO",
                period="2026-10",
                subject="Colombia October",
                html=html,
                status="sent",
                sent_at=NOW,
            ),
            Edition(
                segment="public|fr|monthly",
                audience="public",
                period="2026-10",
                language="fr",
                subject="Brouillon",
                html=html,
                status="draft",
            ),
        ]
        session.add_all(editions)
    engine.dispose()
    listing = client.get("/archive/")
    assert listing.status_code == 200
    assert "Public October" in listing.text
    assert "Colombia October" not in listing.text and "Brouillon" not in listing.text
    public_id, colombia_id, draft_id = (edition.id for edition in editions)
    page = client.get(f"/archive/{public_id}")
    assert page.status_code == 200 and "Dear reader," in page.text
    assert "[[diffusion:" not in page.text and "diffusion-web-version" not in page.text
    # No link that needs a recipient: the page says where a reader's own links are.
    assert ">unsubscribe<" not in page.text and ">preferences<" not in page.text
    assert "use the links at the end of the email you received" in page.text
    assert '<a href="/archive/?lang=en">Archive</a>' in page.text
    assert page.headers.get("X-Robots-Tag") is None
    missing = client.get("/archive/999999")
    assert missing.status_code == 404
    assert client.get(f"/archive/{draft_id}").status_code == 404
    # A Member State's edition opens only with the signed link its emails carry.
    assert colombia_id is not None and public_id is not None
    signed = links.archive_url(local_settings, colombia_id)
    assert signed.startswith(f"http://127.0.0.1:8080/archive/{colombia_id}?sig=")
    opened = client.get(signed.removeprefix("http://127.0.0.1:8080"))
    assert opened.status_code == 200 and "Dear reader," in opened.text
    assert opened.headers["Cache-Control"] == "no-store"
    signature = links.archive_signature(local_settings, colombia_id)
    # The first character: the last one's low bits are base64 padding, ignored when decoded.
    tampered = ("A" if signature[0] != "A" else "B") + signature[1:]
    for refused in (
        f"/archive/{colombia_id}",
        f"/archive/{colombia_id}?sig=",
        f"/archive/{colombia_id}?sig={tampered}",
        f"/archive/{colombia_id}?sig={links.archive_signature(local_settings, public_id)}",
        f"/archive/{colombia_id}?sig={make_token(KEY, 'preferences', colombia_id)}",
    ):
        answer = client.get(refused)
        assert (answer.status_code, answer.text) == (404, missing.text), refused
        assert "Colombia October" not in answer.text
    # Signed with another key (another installation): refused too.
    other = load_settings(
        home=local_settings.home,
        database_url=local_settings.database_url,
        secret_key="other-for-signing-links-0123456789",
    )
    assert client.get(links.archive_url(other, colombia_id)).status_code == 404
    # A draft stays hidden even with its signature.
    assert draft_id is not None
    assert client.get(links.archive_url(local_settings, draft_id)).status_code == 404


def test_serve_runs_the_scheduler_and_the_pages_and_stops_on_sigterm(
    local_settings: Settings, sqlite_url: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DIFFUSION_HOME": str(local_settings.home),
        "DIFFUSION_DATABASE_URL": sqlite_url,
        "DIFFUSION_SECRET_KEY": "serve-secret-for-signing-links-0123456789",
    }
    command = [str(Path(sys.executable).with_name("diffusion")), "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    engine = _engine(local_settings)
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None and health.json() == {"status": "ok", "database": "ok"}
        # A fresh service catches up at once on the interval jobs it has never run.
        # (The daily purge catches up too when its last time is within the grace hours.)
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                done = set(
                    connection.execute(
                        sa.text("SELECT name FROM job_runs WHERE last_finished_at IS NOT NULL")
                    ).scalars()
                )
            if {"collect", "send"} <= done:
                break
            time.sleep(0.1)
        assert {"collect", "send"} <= done <= {"collect", "send", "purge"}
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
        engine.dispose()
    assert process.returncode == 0, output
    assert "job collect: collection:" in output and "job send: sending:" in output


class _Fields(HTMLParser):
    """The form fields of a page, the labels that name them, and the page's language."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str | None]] = []  # (type, id) outside a <label>
        self.wrapped = 0
        self.labelled: set[str] = set()
        self.lang: str | None = None
        self._in_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "html":
            self.lang = found.get("lang")
        elif tag == "label":
            self._in_label += 1
            if found.get("for"):
                self.labelled.add(str(found["for"]))
        elif tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            if self._in_label:
                self.wrapped += 1
            else:
                self.fields.append((tag, found.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._in_label -= 1


def test_every_form_field_has_a_label(client: TestClient, local_settings: Settings) -> None:
    subscriber_id = _add(local_settings, "labels@example.org")
    token = make_token(KEY, "preferences", subscriber_id)
    for path in ("/", "/?lang=fr", f"/preferences/{token}"):
        page = _Fields()
        page.feed(client.get(path).text)
        assert page.lang in ("en", "fr")
        assert page.fields and page.wrapped, path
        for tag, field_id in page.fields:
            assert field_id in page.labelled, f"{path}: <{tag} id={field_id}> has no label"
