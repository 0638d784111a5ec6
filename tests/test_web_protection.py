"""Security headers, the CSRF cookie, path numbers, the rate limiter, names, file modes, markup."""

import base64
import hashlib
import logging
import re
import stat
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffusion import db, validate
from diffusion.cli import cli
from diffusion.cli.base import console
from diffusion.config import Settings, load_settings
from diffusion.contracts import Recipient
from diffusion.deliver.message import MessageTemplate
from diffusion.models import Edition, Source
from diffusion.subscriptions import check_subscriber
from diffusion.web import create_app
from diffusion.web.headers import STYLE_BLOCK
from diffusion.web.protection import RateLimiter
from diffusion.web.server import RedactTokens
from tests.people import RULES

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGES = ("/", "/?lang=fr", "/archive/", "/confirm/x", "/unsubscribe/x", "/healthz", "/nowhere")
# Pages of what we publish (web/templates/pages/): their styles must be allowed by hash too.
PUBLISHED = (
    "/archive/",
    "/news/public",
    "/news/sector/ED?lang=fr",
    "/directory/",
    "/items/nowhere",
)


@pytest.fixture
def https_settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return load_settings(
        home=tmp_path, database_url=sqlite_url, base_url="https://news.example.org"
    )


@pytest.fixture
def client(tmp_path: Path, sqlite_url: str) -> Iterator[TestClient]:
    settings = load_settings(home=tmp_path, database_url=sqlite_url)
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


def test_every_page_carries_the_security_headers(client: TestClient) -> None:
    for path in PAGES + PUBLISHED + ("/feeds/public.en.atom",):
        headers = client.get(path).headers
        policy_ = headers["content-security-policy"]
        assert "script-src 'none'" in policy_ and "frame-ancestors 'none'" in policy_, path
        assert "unsafe-inline" not in policy_, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        assert "strict-transport-security" not in headers, path  # over http it would stick


def test_the_policy_allows_exactly_the_styles_of_the_page(client: TestClient) -> None:
    for path in ("/", *PUBLISHED):
        page = client.get(path)
        allowed = re.findall(r"'sha256-([^']+)'", page.headers["content-security-policy"])
        blocks = STYLE_BLOCK.findall(page.text)
        assert blocks and "<script" not in page.text, path
        assert "style=" not in page.text, path  # an inline style attribute would be refused
        for block in blocks:  # as the browser hashes it: the text between the tags
            digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
            assert digest in allowed, path


def test_over_https_hsts_and_a_host_prefixed_secure_cookie(https_settings: Settings) -> None:
    with TestClient(create_app(https_settings), base_url="https://news.example.org") as client:
        page = client.get("/")
        assert page.headers["strict-transport-security"].startswith("max-age=")
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-diffusion_csrf=")
        assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
        form = {"csrf_token": CSRF.search(page.text).group(1), "email": "h@example.org"}  # type: ignore[union-attr]
        form["language"] = "en"
        assert client.post("/subscribe", data=form).status_code == 200
        # A cookie planted without the prefix (by a sibling subdomain) is not ours.
        client.cookies.clear()
        client.cookies.set("diffusion_csrf", "planted-value-planted-value-0000")
        assert client.post("/subscribe", data=form).status_code == 403


@pytest.mark.parametrize("planted", ["", "x", "not a token at all; really"])
def test_an_empty_or_planted_cookie_is_replaced_and_the_form_works(
    client: TestClient, planted: str
) -> None:
    client.cookies.set("diffusion_csrf", planted)
    page = client.get("/")
    assert "diffusion_csrf=" in page.headers.get("set-cookie", "")
    client.cookies.clear()
    client.cookies.set("diffusion_csrf", page.cookies["diffusion_csrf"])
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    answer = client.post(
        "/subscribe", data={"csrf_token": token, "email": "p@example.org", "language": "en"}
    )
    assert answer.status_code == 200


def test_an_edition_page_is_the_email_with_no_script_and_no_frame(settings: Settings) -> None:
    engine = db.engine_for(settings)
    with db.session_scope(engine) as session:
        edition = Edition(
            segment="public|en|monthly",
            audience="public",
            period="2026-10",
            subject="October",
            html='<html><body><p style="color:red">Hi</p></body></html>',
            status="sent",
            sent_at=NOW,
        )
        session.add(edition)
        session.flush()
        edition_id = edition.id
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        page = client.get(f"/archive/{edition_id}")
        assert page.status_code == 200
        policy_ = page.headers["content-security-policy"]
        assert "script-src 'none'" in policy_ and "frame-ancestors 'none'" in policy_
        # Numbers no row can have are not found, on both databases (PostgreSQL refuses them).
        for path in ("/archive/99999999999999999999", "/archive/2147483648", "/archive/0"):
            assert client.get(path).status_code == 404, path


def test_the_rate_limiter_forgets_expired_keys() -> None:
    now = [0.0]
    limiter = RateLimiter(2, window=60, clock=lambda: now[0])
    for number in range(5000):
        assert limiter.allow(f"client-{number}")
    assert len(limiter) == 5000
    now[0] = 61.0
    assert limiter.allow("late")
    assert len(limiter) == 1
    # A key still inside its window is kept, and still limited.
    assert limiter.allow("late") and not limiter.allow("late")
    now[0] = 100.0
    assert not limiter.allow("late") and len(limiter) == 1


def test_names_lose_control_characters_at_the_door(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session:
        checked = check_subscriber(
            session,
            {
                "email": "n@example.org",
                "audience": "public",
                "name": "Ada\x00\x1b[31m\u202e\tLove\r\n",
            },
            rules=RULES,
        )
    engine.dispose()
    assert checked["name"] == "Ada [31m Love"
    assert validate.person_name("[/bold] Ünïcode") == "[/bold] Ünïcode"  # markup is not control
    assert validate.person_name("x" * 300) == "x" * 200


def test_a_stored_name_with_control_characters_never_reaches_the_to_header(
    tmp_path: Path,
) -> None:
    edition = Edition(
        id=1,
        segment="public|en|monthly",
        audience="public",
        period="2026-10",
        subject="S",
        html="<p>Hi</p>",
        text="Hi",
        status="approved",
        created_at=NOW,
    )
    template = MessageTemplate.from_edition(edition, load_settings(home=tmp_path), now=NOW)
    raw = template.personalise(Recipient(4, "old@example.org", "Old\x00\x1bName", "en"))
    assert b"\x00" not in raw and b"\x1b" not in raw
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"].addresses[0].display_name == "Old Name"


def test_the_database_and_key_files_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIFFUSION_SECRET_KEY")
    assert CliRunner().invoke(cli, ["--home", str(tmp_path), "init"]).exit_code == 0
    for name in ("diffusion.db", "secret_key"):
        assert stat.S_IMODE((tmp_path / "var" / name).stat().st_mode) == 0o600, name
    (tmp_path / "var" / "diffusion.db").chmod(0o644)  # made by an older version
    db.make_engine(f"sqlite:///{tmp_path / 'var' / 'diffusion.db'}").dispose()
    assert stat.S_IMODE((tmp_path / "var" / "diffusion.db").stat().st_mode) == 0o600


def test_tokens_are_redacted_from_access_lines() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/unsubscribe/7.abc.def?lang=fr", "1.1", 200),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "POST /unsubscribe/…?lang=fr HTTP/1.1" 200'


class _MarkupReason(BaseHTTPRequestHandler):
    """A feed server whose reason phrase holds rich markup (and a terminal link)."""

    def do_GET(self) -> None:
        self.send_response(502, "[/bold] Bad [link=https://evil.example]Gateway[/link]")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_markup_from_a_feed_server_prints_literally_in_collect(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 300)  # one table row per source, unwrapped
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MarkupReason)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    engine = db.make_engine(sqlite_url)
    with db.session_scope(engine) as session:
        url = f"http://127.0.0.1:{server.server_address[1]}/feed"
        session.add(Source(name="[bold]feed[/bold]", url=url, kind="ngo_action"))
    engine.dispose()
    try:
        base = ["--home", str(tmp_path), "--database-url", sqlite_url]
        result = CliRunner().invoke(cli, [*base, "collect"])
    finally:
        server.shutdown()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    output = result.output
    assert "[bold]feed[/bold]" in output
    assert "[/bold] Bad [link=https://evil.example]Gateway[/link]" in output
    assert "\x1b]8;" not in output  # no terminal hyperlink
