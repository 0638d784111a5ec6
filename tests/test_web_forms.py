"""The subscription forms need no codes: keys picked by name, themes from those in use.

Real HTTP requests to the app (Starlette's test client over the ASGI app) on the demo data.
"""

import mailbox
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffusion import db, i18n, subscriptions
from diffusion.cli import cli
from diffusion.config import Settings, load_settings
from diffusion.editions import digest_for
from diffusion.select.rules import load_rules
from diffusion.subscriptions import add_subscriber
from diffusion.tokens import make_token
from diffusion.vocabulary import sector_name
from diffusion.web import create_app
from tests.people import RULES

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

KEY = "forms-test-secret-for-signing-links-0123"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CONFIRM = re.compile(r"http://\S+?(/confirm/\S+)")
NOW = datetime.now(UTC)
IFLA = "International Federation of Library Associations and Institutions (IFLA)"


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("forms")
    result = CliRunner().invoke(cli, ["--home", str(home), "demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def settings(demo_home: Path) -> Settings:
    return load_settings(home=demo_home, secret_key=KEY)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


class Form(HTMLParser):
    """The selects (id -> [(value, text)]), checkboxes and text inputs of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.selects: dict[str, list[tuple[str, str]]] = {}
        self.checkboxes: dict[str, list[str]] = {}
        self.text_inputs: list[str] = []
        self._select: str | None = None
        self._option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "select":
            self._select = found["id"]
            self.selects[self._select] = []
        elif tag == "option" and self._select:
            self._option = found["value"]
            self.selects[self._select].append((self._option, ""))
        elif tag == "input" and found.get("type") == "checkbox":
            self.checkboxes.setdefault(found["name"], []).append(found["value"])
        elif tag == "input" and found.get("type") == "text":
            self.text_inputs.append(found["name"])

    def handle_data(self, data: str) -> None:
        if self._select and self._option is not None:
            value, text = self.selects[self._select][-1]
            self.selects[self._select][-1] = (value, text + data.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "option":
            self._option = None
        elif tag == "select":
            self._select = None


def _form(html: str) -> Form:
    parser = Form()
    parser.feed(html)
    return parser


def _mail_keys(settings: Settings) -> set[str]:
    if not (settings.outbox_dir / "new").is_dir():
        return set()
    return set(mailbox.Maildir(settings.outbox_dir, create=False).keys())


def _confirm_path(settings: Settings, before: set[str]) -> str:
    """The confirm link of the one message mailed since `before`."""
    box = mailbox.Maildir(settings.outbox_dir, create=False)
    (new,) = set(box.keys()) - before
    message = message_from_bytes(box.get_bytes(new), policy=policy.default)
    body = message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    match = CONFIRM.search(body)
    assert match, body
    return match.group(1)


def _held(settings: Settings, email: str) -> dict[str, tuple[str, list[str]]]:
    engine = db.engine_for(settings)
    try:
        with db.session_scope(engine) as session:
            person = subscriptions.find_person(session, email)
            assert person is not None
            return {
                f"{s.audience}:{s.key}": (s.status, list(s.themes))
                for s in subscriptions.subscriptions_of(session, person)
            }
    finally:
        engine.dispose()


def _subscribe_and_confirm(
    client: TestClient, settings: Settings, language: str, fields: dict[str, object]
) -> None:
    before = _mail_keys(settings)
    token = CSRF.search(client.get(f"/?lang={language}").text).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": token, "language": language, "lang": language, **fields}
    answer = client.post("/subscribe", data=form)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    path = _confirm_path(settings, before)
    page = client.get(path)
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    assert client.post(path, data={"csrf_token": token}).status_code == 200


@pytest.mark.parametrize("language", ["en", "ar", "zh", "fr"])
def test_the_form_offers_every_key_by_name_in_the_page_language(
    client: TestClient, language: str
) -> None:
    page = client.get(f"/?lang={language}")
    form = _form(page.text)
    assert "key" not in form.text_inputs and "themes" not in form.text_inputs  # no codes to type
    ngos = dict(form.selects["key_ngo"])
    assert ngos["ifla"] == IFLA
    assert dict(form.selects["key_field_office"])["dhaka"] == "Dhaka"
    assert dict(form.selects["key_sector"])["ED"] == sector_name("ED", language)
    countries = dict(form.selects["key_country"])
    assert countries["BD"] == i18n.country_name("BD", language) != "BD"
    assert len(countries) > 200  # every Member State, not only the directory's
    # Sorted by name, as a reader looks for them (the first option is "none").
    names = [name for _, name in form.selects["key_ngo"][1:]]
    assert names == sorted(names, key=str.casefold)
    # The themes are those the directory and the items use, as checkboxes.
    assert {"libraries", "lifelong-learning"} <= set(form.checkboxes["themes"])
    if language == "ar":
        assert 'dir="rtl"' in page.text


@pytest.mark.parametrize(
    ("language", "audience", "field", "key"),
    [
        ("en", "ngo", "key_ngo", "ifla"),
        ("ar", "ngo", "key_ngo", "ifla"),
        ("fr", "sector", "key_sector", "ED"),
        ("ar", "field_office", "key_field_office", "dhaka"),
        ("es", "member_state", "key_country", "CO"),
        ("ar", "national_commission", "key_country", "BD"),
    ],
)
def test_a_key_picked_by_name_is_the_subscription_confirmed(
    client: TestClient, settings: Settings, language: str, audience: str, field: str, key: str
) -> None:
    email = f"{audience}.{language}@example.org"
    # The other lists hold a choice too (CI is a Sector and a country): only the one of the
    # audience's key type counts.
    others = {"key_sector": "CI", "key_country": "CI", "key_ngo": "icsc"}
    _subscribe_and_confirm(
        client, settings, language, {**others, "email": email, "audience": audience, field: key}
    )
    assert list(_held(settings, email)) == [f"{audience}:{key}"]


@pytest.mark.parametrize("language", ["en", "ar"])
def test_an_unknown_key_points_to_its_list(client: TestClient, language: str) -> None:
    token = CSRF.search(client.get(f"/?lang={language}").text).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": token, "language": language, "lang": language}
    for audience, field, list_label in (
        ("ngo", "key_ngo", i18n.words(language).gettext("NGO")),
        (
            "field_office",
            "key_field_office",
            i18n.words(language).gettext("Field Office (by city)"),
        ),
    ):
        answer = client.post(
            "/subscribe",
            data={
                **form,
                "email": f"{audience}@example.org",
                "audience": audience,
                field: "nobody",
            },
        )
        assert answer.status_code == 400
        alert = answer.text[answer.text.index('role="alert"') :].split("</div>")[0]
        assert list_label in alert and "nobody" not in alert
        assert "ifla" in dict(_form(answer.text).selects["key_ngo"])  # the list is there again
        # Nothing chosen at all says the same.
        missing = client.post(
            "/subscribe",
            data={**form, "email": f"{audience}.none@example.org", "audience": audience},
        )
        assert missing.status_code == 400 and list_label in missing.text


def test_themes_are_checked_and_the_digest_keeps_its_items(
    client: TestClient, settings: Settings
) -> None:
    email = "themes@example.org"
    token = CSRF.search(client.get("/?lang=fr").text).group(1)  # type: ignore[union-attr]
    form = {
        "csrf_token": token,
        "email": email,
        "audience": "public",
        "language": "fr",
        "lang": "fr",
    }
    # The old French hint, typed as shown, matched nothing and emptied the digest: refused.
    before = _mail_keys(settings)
    typed = client.post(
        "/subscribe", data={**form, "themes": "apprentissage tout au long de la vie"}
    )
    assert typed.status_code == 400
    assert "Choisissez les thèmes dans la liste" in typed.text
    assert _mail_keys(settings) == before  # nothing was asked for
    everything = digest_for(
        db.engine_for(settings),
        settings,
        rules=load_rules(settings.routing),
        audience="public",
        key="",
        language="fr",
        period=None,
        now=NOW,
    ).item_count
    assert everything > 0
    _subscribe_and_confirm(
        client,
        settings,
        "fr",
        {"email": email, "audience": "public", "themes": ["leave-no-one-behind", "inclusion"]},
    )
    assert _held(settings, email) == {"public:": ("active", ["leave-no-one-behind", "inclusion"])}
    narrowed = digest_for(
        db.engine_for(settings),
        settings,
        rules=load_rules(settings.routing),
        audience="",
        key="",
        language="fr",
        period=None,
        now=NOW,
        subscriber_email=email,
    ).item_count
    assert 0 < narrowed <= everything


def test_the_preferences_page_says_what_the_person_is_subscribed_as(
    client: TestClient, settings: Settings
) -> None:
    engine = db.engine_for(settings)
    try:
        with db.session_scope(engine) as session:
            for audience, key in (
                ("ngo", "ifla"),
                ("field_office", "dhaka"),
                ("member_state", "BD"),
            ):
                person = add_subscriber(
                    session,
                    email="held@example.org",
                    audience=audience,
                    rules=RULES,
                    key=key,
                    now=NOW,
                )
            assert person.id is not None
            person_id = person.id
    finally:
        engine.dispose()
    path = f"/preferences/{make_token(KEY, 'preferences', person_id)}"
    english = client.get(path + "?lang=en").text
    assert f"NGO partner: {IFLA}" in english
    assert "Field Office: Dhaka" in english
    assert "Member State (Permanent Delegation): Bangladesh" in english
    french = client.get(path + "?lang=fr").text
    assert f"ONG partenaire : {IFLA}" in french
    assert "Bangladesh" in french
    arabic = client.get(path + "?lang=ar").text
    assert i18n.country_name("BD", "ar") in arabic and 'dir="rtl"' in arabic
    # The add form offers the same lists, by name.
    assert dict(_form(english).selects["key_ngo-add"])["ifla"] == IFLA
