"""The six UN languages end to end: previews, French gaps, RTL, Chinese wrapping, choices."""

import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import feedparser
import pytest
from click.testing import CliRunner
from digest_dataset import NOW, directory, items, store
from markupsafe import escape
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient
from test_web import _add, _subscriber

from diffusion import db, i18n, links, personalise, subscriptions
from diffusion.cli import cli
from diffusion.config import Settings, bundled_path, load_settings
from diffusion.contracts import Period, Segment
from diffusion.deliver.feeds import render_feed, write_feeds
from diffusion.errors import InvalidInput
from diffusion.preview import SAMPLE_EMAIL, SAMPLE_NAME, build_preview
from diffusion.render.text import display_width, wrap_width
from diffusion.select.digest import build_digest
from diffusion.select.rules import load_rules
from diffusion.vocabulary import sector_name
from diffusion.web import create_app
from diffusion.web.confirmation import Confirmation, confirmation_message
from tests import goldens

GOLDEN = goldens.ROOT / "email"
AUDIENCES = ("public", "ngo:ifla", "sector:ED", "member_state:BD")
# The letters of each language's own words belong to this Unicode script (by character name).
SCRIPTS = {
    "ar": "ARABIC",
    "zh": "CJK",
    "ru": "CYRILLIC",
    "en": "LATIN",
    "fr": "LATIN",
    "es": "LATIN",
}
_URL = re.compile(r"\S+@\S+|https?://\S+|\[\[diffusion:\w+\]\]")


class OwnText(HTMLParser):
    """Text of the page's own language: not inside an element of another `lang`, not in
    <bdi>, not between Unicode isolates, not hidden (the preheader), not in <head>."""

    VOID = frozenset("br img hr meta link input area base col embed source track wbr".split())

    def __init__(self, language: str) -> None:
        super().__init__(convert_charrefs=True)
        self.language = language
        self.stack: list[tuple[str, bool]] = []  # (tag, excluded)
        self.own: list[str] = []
        self.isolated: list[str] = []

    def _excluded(self) -> bool:
        return any(excluded for _tag, excluded in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        values = dict(attrs)
        lang = values.get("lang")
        excluded = (
            tag in ("head", "bdi", "style", "script")
            or (lang is not None and lang != self.language)
            or "display:none" in (values.get("style") or "").replace(" ", "")
        )
        self.stack.append((tag, excluded))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._excluded():
            self.isolated.append(data)
            return
        outside = re.sub(f"{i18n.FSI}.*?{i18n.PDI}", " ", data, flags=re.S)
        self.isolated.extend(re.findall(f"{i18n.FSI}(.*?){i18n.PDI}", data, flags=re.S))
        self.own.append(outside)


def own_words(html: str, language: str) -> tuple[str, str]:
    parser = OwnText(language)
    parser.feed(html)
    return " ".join(parser.own), " ".join(parser.isolated)


def foreign_letters(text: str, language: str) -> set[str]:
    """Letters of `text` that are not in the language's script."""
    script = SCRIPTS[language]
    return {
        char
        for char in _URL.sub(" ", text)
        if unicodedata.category(char).startswith("L") and script not in unicodedata.name(char, "")
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Engine]]:
    home = tmp_path_factory.mktemp("languages")
    settings = load_settings(
        home=home,
        database_url=f"sqlite:///{home / 'digest.db'}",
        secret_key="test-secret-key-for-signing-links",
        base_url="https://diffusion.example.org",
    )
    db.upgrade(settings.database)
    engine = db.make_engine(settings.database)
    store(engine)
    yield settings, engine
    engine.dispose()


def test_languages_default_to_the_six(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path).languages == ["ar", "zh", "en", "fr", "ru", "es"]


@pytest.mark.parametrize("language", i18n.UN_LANGUAGES)
@pytest.mark.parametrize("audience", AUDIENCES)
def test_previews_speak_the_readers_language_in_its_script(
    dataset: tuple[Settings, Engine], audience: str, language: str
) -> None:
    settings, engine = dataset
    preview = build_preview(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience=audience,
        language=language,
        subscriber_email=None,
        period="2026-11",
        now=NOW,
    )
    html = preview.html
    direction = "rtl" if language == "ar" else "ltr"
    assert f'<html lang="{language}" dir="{direction}"' in html
    own, isolated = own_words(html, language)
    own = own.replace(SAMPLE_NAME, " ")
    if language not in ("ar",):  # a key's name (IFLA) is data: isolated in Arabic, kept here
        own = own.replace("IFLA", " ")
    assert i18n.words(language).gettext("View this email in your browser") in own
    assert foreign_letters(own, language) == set(), own
    if language != "en":
        # No English sentence of the catalogue is left in the email's own words.
        words = i18n.words(language)
        english = i18n.words("en")
        for phrase in ("Dear", "View this email", "In this issue", "More online", "You receive"):
            assert phrase not in own, phrase
        assert english.gettext("Dear reader,") != words.gettext("Dear reader,")
    text = preview.text
    assert personalise.greeting(language, SAMPLE_NAME) in text
    assert i18n.newsletter_name(settings, language) in text
    if language == "ar":
        # Embedded left-to-right text is isolated: the name, the address, the key, the links' rows.
        assert i18n.isolate(SAMPLE_NAME) in text and i18n.isolate(SAMPLE_EMAIL) in text
        assert SAMPLE_EMAIL in isolated


def test_an_english_item_in_an_arabic_email_keeps_its_own_lang_and_direction(
    dataset: tuple[Settings, Engine],
) -> None:
    settings, engine = dataset
    preview = build_preview(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="ngo:ifla",
        language="ar",
        subscriber_email=None,
        period="2026-11",
        now=NOW,
    )
    html = preview.html
    assert re.search(r'<div class="entry" lang="en" dir="ltr" style="text-align:left;">', html)
    assert "text-align:right" in html and "padding-right:20px" in html
    subject = BytesParser(policy=policy.default).parsebytes(preview.eml)["Subject"]
    assert subject.startswith(f"{i18n.FSI}IFLA{i18n.PDI}: ")
    assert "باللغة الإنجليزية" in html  # "in English", said in Arabic


def test_french_gaps_sender_header_labels_and_sector_names(
    dataset: tuple[Settings, Engine],
) -> None:
    settings, engine = dataset
    preview = build_preview(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="ngo:ifla",
        language="fr",
        subscriber_email=None,
        period="2026-11",
        now=NOW,
    )
    message = BytesParser(policy=policy.default).parsebytes(preview.eml)
    assert message["From"].addresses[0].display_name == "Diffusion du partenariat ONG-UNESCO"
    assert "Diffusion du partenariat ONG-UNESCO · novembre 2026" in preview.html.replace(
        "&middot;", "·"
    )
    text = preview.text
    assert "IFLA : lettre d'information des partenaires ONG, novembre 2026" in text
    assert "Points focaux des Secteurs" in text
    assert "* Communication et information" in text  # a Sector by its name, not "CI"
    assert "Courriel : " in text
    assert "Nom:" not in text and "Email:" not in text and "Sector:" not in text
    sector = build_preview(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience="sector:ED",
        language="fr",
        subscriber_email=None,
        period="2026-11",
        now=NOW,
    )
    assert "Domaines : " in sector.text and "Domaines: " not in sector.text
    assert "Éducation" in sector.text and "Domaines : ED" not in sector.text


def test_newsletter_and_sender_names_are_configured_per_language(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path,
        newsletter_names={"es": "Boletín de las ONG"},
        sender_names={"ar": "فريق الشراكة"},
    )
    assert i18n.newsletter_name(settings, "es") == "Boletín de las ONG"
    assert i18n.sender_name(settings, "es") == "Boletín de las ONG"
    assert i18n.sender_name(settings, "ar") == "فريق الشراكة"
    assert i18n.newsletter_name(settings, "ru") == "Рассылка партнерства НПО–ЮНЕСКО"
    one_name = load_settings(home=tmp_path, organisation_name="Partners' Letter")
    assert i18n.newsletter_name(one_name, "fr") == "Partners' Letter"
    with pytest.raises(Exception, match="newsletter_names: 'de' is not in languages"):
        load_settings(home=tmp_path, newsletter_names={"de": "Partnerbrief"})
    with pytest.raises(Exception, match="languages: no catalogue for de"):
        load_settings(home=tmp_path, languages=["en", "de"])


def test_a_regional_variant_is_its_language_and_the_error_names_the_setting() -> None:
    assert i18n.offered_language("fr-CA", ["en", "fr"]) == "fr"
    assert i18n.offered_language("ZH", ["zh"]) == "zh"
    with pytest.raises(InvalidInput, match=r"'pt-BR': not offered; .* are en, fr \(setting"):
        i18n.offered_language("pt-BR", ["en", "fr"])


def _diffusion(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point, which turns errors into a line and an exit code."""
    code = "from diffusion.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )


def test_the_cli_refuses_a_language_not_configured(tmp_path: Path) -> None:
    base = ["--home", str(tmp_path), "--database-url", f"sqlite:///{tmp_path / 'd.db'}"]
    assert CliRunner().invoke(cli, [*base, "init"]).exit_code == 0
    refused = _diffusion(*base, "preview", "--audience", "public", "--lang", "de")
    configured = "the configured languages are ar, zh, en, fr, ru, es"
    assert refused.returncode == 2
    assert f"language 'de': not offered; {configured}" in " ".join(refused.stderr.split())
    assert "Traceback" not in refused.stderr
    added = _diffusion(
        *base, "subscribers", "add", "a@example.org", "--audience", "public", "--language", "de"
    )
    assert added.returncode == 2 and configured in " ".join(added.stderr.split())
    assert "Traceback" not in added.stderr


def test_chinese_wraps_between_characters_by_display_width() -> None:
    text = (
        "以下是本期教科文组织与非政府组织伙伴关系的公开新闻。学习型城市分享了成人学习者的经验，"
        "并提供了第四届国际学习型城市大会的数据。"
    )
    lines = wrap_width(text, 72, indent="  ").split("\n")
    assert len(lines) > 1
    assert all(display_width(line) <= 72 for line in lines)
    # Unicode line breaking: no line starts with a closing punctuation mark.
    assert not any(line.strip()[:1] in "，。、：；！？）" for line in lines)
    assert "".join(line.strip() for line in lines) == text
    # Latin words and URLs are still never split.
    url = "https://example.org/" + "x" * 80
    assert wrap_width(f"see {url} now", 72) == f"see\n{url}\nnow"


# Codes and formats a translated sentence quotes as they are (ifla, ED, CO, RSS...).
_QUOTED = re.compile(r"(?<![A-Za-z])(ifla|ED|SC|SHS|CLT|CI|CO|RSS|Atom|Cookie)(?![A-Za-z])")


@pytest.fixture
def web_client(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Settings, TestClient]]:
    settings = load_settings(
        home=tmp_path, database_url=sqlite_url, secret_key="test-secret-key-for-signing-links"
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield settings, client


@pytest.mark.parametrize("language", i18n.UN_LANGUAGES)
def test_pages_are_served_in_the_six_languages_by_accept_language_or_picker(
    web_client: tuple[Settings, TestClient], language: str
) -> None:
    settings, client = web_client
    words = i18n.words(language)
    subscriber_id = _add(settings, f"reader.{language}@example.org", language=language)
    pending_id = _add(settings, f"new.{language}@example.org", status="pending", language=language)
    pending = _subscriber(settings, f"new.{language}@example.org")
    assert pending is not None
    wish = subscriptions.Request(
        email=pending.email, name="", language=language, audience="public", key=""
    )
    confirm = links.confirm_url(
        settings, pending_id, request=wish.claims(), issued_at=pending.status_changed_at
    )
    pages = {
        confirm: words.gettext("Confirm your subscription"),
        "/": words.gettext("Subscribe to the newsletter"),
        "/archive/": words.gettext("Archive"),
        links.preferences_url(settings, subscriber_id): words.gettext("Your preferences"),
        links.unsubscribe_url(settings, subscriber_id): words.gettext("Unsubscribe"),
        "/confirm/not-a-token": words.gettext("This link cannot be used"),
    }
    for url, title in pages.items():
        path = url.removeprefix(settings.base_url)
        negotiated = client.get(path, headers={"Accept-Language": f"{language}-XX,de;q=0.9"})
        picked = client.get(
            path + ("&" if "?" in path else "?") + f"lang={language}",
            headers={"Accept-Language": "de"},
        )
        for page in (negotiated, picked):
            html = page.text
            assert page.headers["content-language"] == language, path
            assert f'<html lang="{language}" dir="{i18n.direction(language)}">' in html
            assert f"<h1>{escape(title)}</h1>" in html, path
            own, _ = own_words(html, language)
            own = own.replace(f"reader.{language}@example.org", " ")
            own = _QUOTED.sub(" ", own.replace(f"new.{language}@example.org", " "))
            assert foreign_letters(own, language) == set(), (path, own)
    picker = client.get("/", headers={"Accept-Language": language}).text
    for code, name in (("ar", "العربية"), ("zh", "中文"), ("ru", "Русский"), ("es", "Español")):
        assert f'lang="{code}"' in picker and name in picker


@pytest.mark.parametrize(
    ("language", "name"),
    [
        ("ar", "نشرة الشراكة بين المنظمات غير الحكومية واليونسكو"),
        ("zh", "非政府组织—教科文组织伙伴关系通讯"),
        ("ru", "Рассылка партнерства НПО–ЮНЕСКО"),
        ("es", "Difusión de la asociación ONG-UNESCO"),
        ("fr", "Diffusion du partenariat ONG-UNESCO"),
    ],
)
def test_feeds_exist_per_language_with_titles_in_it(
    tmp_path: Path, language: str, name: str
) -> None:
    settings = load_settings(home=tmp_path, base_url="https://diffusion.example.org")
    out = tmp_path / "feeds"
    write_feeds(items(), directory(), load_rules(bundled_path("routing")), settings, out=out)
    public = feedparser.parse((out / f"public.{language}.atom").read_bytes())
    assert public.bozo == 0 and public.feed.title == name
    assert public.feed.subtitle == i18n.words(language).pgettext(
        "edition title", "NGO-UNESCO partnership news"
    )
    sector = feedparser.parse((out / f"sector/ED.{language}.rss").read_bytes())
    assert sector.feed.language == language
    # In Arabic every key is isolated: it may be written left to right (IFLA).
    isolated = f"{i18n.FSI}{sector_name('ED', language)}{i18n.PDI}"
    assert sector.feed.title.startswith(
        (isolated if language == "ar" else sector_name("ED", language)) + " — "
    )
    ngo = feedparser.parse((out / f"ngo/ifla.{language}.atom").read_bytes()).feed.title
    assert ngo.startswith(f"{i18n.FSI}IFLA{i18n.PDI} — " if language == "ar" else "IFLA — ")


def test_confirmation_mail_in_arabic_isolates_the_address(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, secret_key="test-secret-key-for-signing-links")
    message = confirmation_message(
        settings, Confirmation("ana@example.org", "ar", "https://diffusion.example.org/confirm/x")
    )
    name = "نشرة الشراكة بين المنظمات غير الحكومية واليونسكو"
    assert message["From"].addresses[0].display_name == name
    assert message["Subject"] == f"أكّدوا اشتراككم في {name}"
    body = message.get_content()
    assert f"{i18n.FSI}ana@example.org{i18n.PDI}" in body and "مرحبًا،" in body
    assert message["Content-Language"] == "ar"


@pytest.mark.parametrize(("audience", "language"), [("ngo:ifla", "ar"), ("public", "zh")])
def test_arabic_and_chinese_previews_match_their_golden_text_and_mjml(
    dataset: tuple[Settings, Engine], audience: str, language: str
) -> None:
    """pytest --regenerate-golden rewrites them after a deliberate change."""
    settings, engine = dataset
    preview = build_preview(
        engine,
        settings,
        rules=load_rules(settings.routing),
        audience=audience,
        language=language,
        subscriber_email=None,
        period="2026-11",
        now=NOW,
    )
    stem = f"preview.{audience.replace(':', '-')}.{language}"
    for suffix, actual in (("txt", preview.text), ("mjml", preview.rendered.mjml)):
        goldens.check(GOLDEN / f"{stem}.{suffix}", goldens.without_signatures(actual))


def test_accept_language_picks_the_best_offered_and_never_a_refused_one(
    web_client: tuple[Settings, TestClient],
) -> None:
    _settings, client = web_client
    chosen = {
        "zh-Hans-CN,zh;q=0.9,en;q=0.5": "zh",
        "de-DE,ru;q=0.7,en;q=0.3": "ru",
        "ar;q=0, es;q=0.2": "es",
        "de, fr;q=0": "en",  # q=0: not French, even when nothing else is offered
        "de": "en",  # nothing offered: the default language
    }
    for header, language in chosen.items():
        page = client.get("/", headers={"Accept-Language": header})
        assert page.headers["content-language"] == language, header


def test_an_untitled_feed_entry_is_named_in_the_feeds_language(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, base_url="https://diffusion.example.org")
    untitled = items()[0].model_copy(update={"title": "", "translations": {}})
    for language, name in (("ar", "(بلا عنوان)"), ("zh", "（无标题）"), ("en", "(untitled)")):
        feed = render_feed(
            settings,
            path=f"public.{language}.atom",
            title="t",
            description="d",
            language=language,
            items=[untitled],
            fmt="atom",
        )
        assert feedparser.parse(feed).entries[0].title == name


@pytest.mark.parametrize("language", i18n.UN_LANGUAGES)
def test_a_newsletter_of_several_subscriptions_is_titled_and_headed_in_the_readers_language(
    language: str,
) -> None:
    subscriptions = [
        SimpleNamespace(
            audience=audience, key=key, cadence="monthly", sectors=(), themes=(), regions=()
        )
        for audience, key in (("national_commission", "BD"), ("sector", "ED"))
    ]
    digest = build_digest(
        items(),
        directory(),
        load_rules(bundled_path("routing")),
        segment=Segment.of_person(language, subscriptions),
        period=Period.parse("2026-11", load_settings().zone),
        now=NOW,
        max_items=40,
    )
    words = i18n.words(language)
    country, sector = i18n.country_name("BD", language), sector_name("ED", language)
    assert {section.reason for section in digest.sections} == {country, sector}
    names = {country, sector}
    if i18n.direction(language) == "rtl":
        names = {i18n.isolate(name) for name in names}
    assert all(name in digest.title for name in names), digest.title
    for text in (digest.title, *(section.heading for section in digest.sections)):
        own = re.sub(f"{i18n.FSI}.*?{i18n.PDI}", " ", text)
        assert foreign_letters(own, language) == set(), text
    if language == "fr":
        assert digest.title == "Votre lettre d'information : Bangladesh et Éducation, novembre 2026"
    heading = words.pgettext("section heading", "NGO actions")
    assert f"{heading} · " in " ".join(section.heading for section in digest.sections)
