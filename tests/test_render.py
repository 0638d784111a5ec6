"""Rendering digests to MJML, HTML and text: goldens, inclusion, languages, hostile content."""

import dataclasses
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from diffusion import i18n, personalise, render
from diffusion.config import Settings, load_settings
from diffusion.contracts import (
    Digest,
    DigestEntry,
    Period,
    Recipient,
    ReferenceList,
    RenderedEdition,
    Section,
    Segment,
)
from diffusion.deliver.message import MessageTemplate
from diffusion.errors import TemplateError
from diffusion.models import AUDIENCES, Edition
from diffusion.personalise import FIELDS, placeholder
from diffusion.render import checks
from tests import goldens

GOLDEN = goldens.ROOT / "email"
ZONE = ZoneInfo("Europe/Paris")
KEYS = {
    "ngo": "ifla",
    "sector": "ED",
    "field_office": "dhaka",
    "member_state": "CO",
    "national_commission": "BD",
    "liaison_committee": "",
    "public": "",
}
SECTION_KINDS = (
    ("ngo_action", "NGO actions"),
    ("field_office_activity", "Field Office activities"),
    ("forum_conclusion", "Forum conclusions"),
)
URL = re.compile(r"https?://\S+")


def sample_settings(home: Path) -> Settings:
    return load_settings(
        home=home,
        secret_key="test-secret-key-for-signing-links",
        base_url="https://diffusion.example.org",
    )


def sample_entry(number: int, kind: str = "ngo_action", **changes: object) -> DigestEntry:
    values: dict[str, object] = {
        "item_id": number,
        "kind": kind,
        "title": f"Entry {number}: literacy programme in Medellín",
        "summary": (
            f"Summary of entry {number}. Learning cities share what worked for adult "
            "learners, with figures from the 4th International Conference on Learning Cities."
        ),
        "body_html": "<p>Body</p>",
        "link": f"https://ngo.example.org/news/{number}",
        "language": "en",
        "published_at": datetime(2026, 11, 3 + number % 20, 9, 30, tzinfo=UTC),
        "tags": {"countries": ["CO"], "sectors": ["ED"]},
        "fallback": False,
    }
    values.update(changes)
    return DigestEntry(**values)  # type: ignore[arg-type]


def sample_digest(
    audience: str = "ngo",
    key: str | None = None,
    language: str = "en",
    *,
    entries_per_section: int = 2,
    period: str = "2026-11",
    references: bool = True,
    sections: tuple[Section, ...] | None = None,
    title: str | None = None,
) -> Digest:
    """A digest with fixed dates, as the builder would hand it over."""
    key = KEYS[audience] if key is None else key
    number = 0
    built: list[Section] = []
    for kind, heading in SECTION_KINDS:
        entries = []
        for _ in range(entries_per_section):
            number += 1
            entries.append(sample_entry(number, kind, fallback=number == 2))
        built.append(Section(kind, heading, tuple(entries), more_count=1 if number == 2 else 0))
    refs = (
        (
            ReferenceList(
                "focal_points",
                "Sector focal points",
                ("Name", "Sector", "Email"),
                (("Ana Focal", "Education", "a.focal@unesco.example.org"),),
            ),
        )
        if references
        else ()
    )
    label = f"{audience}:{key}" if key else audience
    chosen = sections if sections is not None else tuple(built)
    return Digest(
        segment=Segment(audience, key, language),
        period=Period.parse(period, ZONE),
        title=title or f"{label}: partners' newsletter, November 2026",
        sections=chosen,
        references=refs,
        more_url=f"https://diffusion.example.org/feeds/{audience}.{language}.atom",
        more_count=sum(section.more_count for section in chosen),  # as the builder counts
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Rendering needs no database: settings only (this overrides the database fixture)."""
    return sample_settings(tmp_path)


def _golden(name: str, actual: str) -> None:
    goldens.check(GOLDEN / name, actual)


@pytest.mark.parametrize(
    ("language", "count", "line", "see"),
    [
        ("en", 1, "1 more item did not fit in this email.", "See it online"),
        ("en", 12, "12 more items did not fit in this email.", "See them online"),
        ("fr", 1, "1 autre élément n'a pas trouvé place dans ce courriel.", "Voir en ligne"),
        ("fr", 3, "3 autres éléments n'ont pas trouvé place dans ce courriel.", "Voir en ligne"),
    ],
)  # fmt: skip
def test_a_capped_digest_says_how_many_more_items_and_where(
    settings: Settings, language: str, count: int, line: str, see: str
) -> None:
    digest = dataclasses.replace(sample_digest("sector", language=language), more_count=count)
    rendered = render.render_digest(digest, settings, web_url="https://diffusion.example.org/a/7")
    html_text = " ".join(rendered.html.split())
    assert line in html.unescape(html_text)
    notice = re.search(r'<a href="([^"]+)"[^>]*>' + see + "</a>", html_text)
    assert notice is not None and notice.group(1) == digest.more_url
    label = f"{see} :" if language == "fr" else f"{see}:"  # French spaces its colons
    text = " ".join(rendered.text.split())
    assert f"{line} {label} {digest.more_url}" in text
    # Without a feed to point to, the web version has them.
    online = dataclasses.replace(digest, more_url=None)
    again = render.render_digest(online, settings, web_url="https://diffusion.example.org/a/7")
    assert f"{label} https://diffusion.example.org/a/7" in " ".join(again.text.split())


def test_an_uncapped_digest_has_no_notice(settings: Settings) -> None:
    digest = dataclasses.replace(sample_digest("sector"), more_count=0)
    rendered = render.render_digest(digest, settings)
    assert "did not fit" not in rendered.html and "did not fit" not in rendered.text


# -- goldens --------------------------------------------------------------------------------


# Goldens pin our own output: the MJML source before mjml-python compiles it, the text part and
# the message; the compiled HTML gets a smoke test below.


@pytest.mark.parametrize("audience", AUDIENCES)
def test_each_audience_matches_its_golden_mjml_and_text(audience: str, settings: Settings) -> None:
    rendered = render.render_digest(sample_digest(audience), settings)
    _golden(f"{audience}.en.mjml", rendered.mjml)
    _golden(f"{audience}.en.txt", rendered.text)


def test_french_edition_matches_its_golden_mjml_and_text(settings: Settings) -> None:
    rendered = render.render_digest(sample_digest("ngo", language="fr"), settings)
    _golden("ngo.fr.mjml", rendered.mjml)
    _golden("ngo.fr.txt", rendered.text)


def test_complete_message_matches_its_golden_eml(settings: Settings) -> None:
    data = _eml(render.render_digest(sample_digest("sector"), settings), settings)
    _golden("sector.en.eml", goldens.normalise_eml(data))


class _Page(HTMLParser):
    """What a reader with images off gets from compiled HTML: its text, links and images."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self.links: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        if tag in ("style", "title", "head"):
            self._hidden += 1
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        if tag == "img":
            self.images.append(values)
            self.text.append(values.get("alt") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "head"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


@pytest.mark.parametrize(("audience", "language"), [*((a, "en") for a in AUDIENCES), ("ngo", "fr")])
def test_compiled_html_parses_carries_every_item_and_fits_under_the_clip(
    audience: str, language: str, settings: Settings
) -> None:
    """A smoke test of mjml-python's output, not a golden: what matters to a reader is there."""
    digest = sample_digest(audience, language=language)
    out = render.render_digest(digest, settings).html
    assert len(out.encode()) <= render.GMAIL_CLIP_BYTES  # Gmail clips at 102 KB
    page = _Page()
    page.feed(out)
    page.close()
    assert page.tags[:1] == ["html"] and "body" in page.tags
    assert f'<html lang="{language}"' in out
    text = " ".join(" ".join(page.text).split())
    for section in digest.sections:
        assert section.heading in text, section.heading
        for entry in section.entries:
            assert entry.title in text, entry.title
            assert entry.link in page.links, entry.link
    # Images off: every image says what it shows, and nothing is only an image.
    assert all((image.get("alt") or "").strip() for image in page.images), page.images
    assert "background-image" not in out and "background=" not in out


def test_each_audience_has_its_own_introduction(settings: Settings) -> None:
    intros = {
        render.render_digest(sample_digest(audience), settings).text.split("\n\n")[3]
        for audience in AUDIENCES
    }
    assert len(intros) == len(AUDIENCES)


# -- plain text -----------------------------------------------------------------------------


def test_text_carries_every_item_heading_and_link(settings: Settings) -> None:
    digest = sample_digest("ngo")
    text = render.render_digest(digest, settings, web_url="https://diffusion.example.org/a/7").text
    flat = " ".join(text.split())
    for section in digest.sections:
        assert f"{section.heading}\n{'=' * len(section.heading)}\n" in text
        for entry in section.entries:
            assert entry.title in flat
            assert entry.summary in flat
            assert f"\n  {entry.link}\n" in text
            assert i18n.format_day(entry.published_at, "en") in text
    assert "Sector focal points\n===================" in text
    assert "a.focal@unesco.example.org" in text
    for url in ("https://diffusion.example.org/a/7", digest.more_url or ""):
        assert f"\n{url}\n" in text
    for field in ("preferences_url", "unsubscribe_url", "greeting", "email"):
        assert placeholder(field) in text
    assert "1 more entry online:" in text


def test_text_is_wrapped_for_a_terminal(settings: Settings) -> None:
    entry = sample_entry(1, summary="word " * 200, title="A long title " * 12)
    digest = sample_digest("public", sections=(Section("event", "Events", (entry,)),))
    text = render.render_digest(digest, settings).text
    for line in text.splitlines():
        assert len(line) <= 72 or URL.fullmatch(line.strip()) or "[[diffusion:" in line, line


def test_text_always_carries_everything_even_when_html_is_trimmed(settings: Settings) -> None:
    digest = sample_digest("liaison_committee", entries_per_section=200)
    rendered = render.render_digest(digest, settings)
    assert rendered.trimmed > 0
    for section in digest.sections:
        for entry in section.entries:
            assert f"\n  {entry.link}\n" in rendered.text


# -- size, once per segment -----------------------------------------------------------------


def test_html_stays_under_gmail_clipping_with_500_entries(settings: Settings) -> None:
    entries = tuple(sample_entry(n, summary="Long summary words. " * 40) for n in range(500))
    digest = sample_digest(
        "ngo", references=False, sections=(Section("ngo_action", "NGO actions", entries),)
    )
    rendered = render.render_digest(digest, settings)
    assert len(rendered.html.encode()) <= render.GMAIL_CLIP_BYTES
    assert 0 < rendered.trimmed < 500
    shown = rendered.html.count('class="entry"')
    assert shown == 500 - rendered.trimmed
    assert "This email was shortened" in rendered.html
    assert f'href="{digest.more_url}"' in rendered.html
    assert f"{rendered.trimmed} more entries online" in rendered.html
    # Kept entries come first, in order: the cut is at the end.
    assert 'news/0"' in rendered.html and f'news/{shown - 1}"' in rendered.html
    assert f'news/{shown}"' not in rendered.html


def test_trimming_respects_a_smaller_limit(settings: Settings) -> None:
    digest = sample_digest("ngo", entries_per_section=30)
    full = render.render_digest(digest, settings)
    limit = len(full.html.encode()) - 5_000
    smaller = render.render_digest(digest, settings, max_bytes=limit)
    assert len(smaller.html.encode()) <= limit
    assert smaller.trimmed > 0 and full.trimmed == 0


def test_one_mjml_render_per_digest(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = checks.mjml2html

    def counting(source: str, **options: object) -> str:
        calls.append(len(source))
        return str(real(source, **options))

    monkeypatch.setattr(checks, "mjml2html", counting)
    rendered = render.render_digest(sample_digest("sector"), settings)
    assert len(calls) == 1
    # The render is shared: the recipient's values are placeholders, not names or addresses.
    for field in FIELDS:
        if field != "name":
            assert placeholder(field) in rendered.html


# -- languages ------------------------------------------------------------------------------


def _html_tag(html: str) -> str:
    match = re.search(r"<html[^>]*>", html)
    assert match is not None
    return match.group(0)


@pytest.mark.parametrize(
    ("language", "direction"), [("en", "ltr"), ("fr", "ltr"), ("ar", "rtl"), ("zh", "ltr")]
)
def test_lang_and_dir_on_html(language: str, direction: str, settings: Settings) -> None:
    html = render.render_digest(sample_digest("public", language=language), settings).html
    assert f'lang="{language}"' in _html_tag(html)
    assert f'dir="{direction}"' in _html_tag(html)
    assert 'lang="und"' not in html
    assert f'role="article" lang="{language}" dir="{direction}"' in html


def test_french_edition_has_french_interface(settings: Settings) -> None:
    rendered = render.render_digest(sample_digest("ngo", language="fr"), settings)
    for phrase in ("Se désabonner", "Modifier vos préférences", "Dans ce numéro", "novembre 2026"):
        assert phrase in rendered.html
    for phrase in (
        "Se désabonner :",
        "Afficher ce courriel dans votre navigateur :",
        "4 nov. 2026",
    ):
        assert phrase in rendered.text
    assert "Unsubscribe" not in rendered.text
    assert "en anglais" in rendered.text  # the fallback entry says which language it is in


def test_weekly_period_label(settings: Settings) -> None:
    for language, label in (("en", "week of Nov 16, 2026"), ("fr", "semaine du 16 nov. 2026")):
        digest = sample_digest("sector", language=language, period="2026-W47")
        assert label in render.render_digest(digest, settings).text


def test_numbers_follow_the_locale(settings: Settings) -> None:
    entries = tuple(sample_entry(n, summary="") for n in range(1234))
    sections = (Section("event", "Évén.", entries), Section("ngo_plan", "Plans", entries[:1]))
    digest = sample_digest("ngo", language="fr", sections=sections)
    assert "(1\u202f234)" in render.render_digest(digest, settings).html


@pytest.mark.parametrize(
    ("language", "name", "expected"),
    [
        ("en", "Ana", "Dear Ana,"),
        ("fr", "Ana", "Bonjour Ana,"),
        ("en", "", "Dear reader,"),
        ("fr", "  ", "Bonjour,"),
        ("en", "Ana\r\nBcc: x", "Dear Ana Bcc: x,"),
    ],
)
def test_greeting(language: str, name: str, expected: str) -> None:
    assert personalise.greeting(language, name) == expected


def test_catalogues_are_complete_for_french() -> None:
    from babel.messages.pofile import read_po

    assert {"en", "fr"} <= set(i18n.available_languages())
    path = i18n.LOCALE_DIR / "fr" / "LC_MESSAGES" / "diffusion.po"
    with path.open("rb") as handle:
        catalog = read_po(handle)
    missing = [m.id for m in catalog if m.id and not (m.string and all(m.string))]
    assert missing == []


# -- inclusion ------------------------------------------------------------------------------


def relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a #rrggbb colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, two: str) -> float:
    high, low = sorted((relative_luminance(one), relative_luminance(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_on_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("foreground", "background"), render.COLOUR_PAIRS)
def test_colour_pairs_meet_wcag_aa(foreground: str, background: str) -> None:
    ratio = contrast(render.PALETTE[foreground], render.PALETTE[background])
    assert ratio >= 4.5, f"{foreground} on {background}: {ratio:.2f}:1"


def test_templates_use_only_palette_colours(settings: Settings) -> None:
    hex_colour = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b")
    for path in sorted(settings.templates.glob("*.j2")):
        assert hex_colour.findall(path.read_text()) == [], f"{path.name}: use palette colours"
    html = render.render_digest(sample_digest("ngo"), settings).html
    used = {colour.lower() for colour in hex_colour.findall(html)}
    assert used <= set(render.PALETTE.values()), used - set(render.PALETTE.values())


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.tags


def _custom_templates(tmp_path: Path, settings: Settings, edit: dict[str, str]) -> Settings:
    folder = tmp_path / "templates"
    folder.mkdir(parents=True)
    for path in settings.templates.glob("*.j2"):
        (folder / path.name).write_text(path.read_text())
    for name, text in edit.items():
        (folder / name).write_text(text)
    return load_settings(
        home=tmp_path, secret_key="test-secret-key-for-signing-links", templates_dir=folder
    )


def _with_logo(tmp_path: Path, settings: Settings, alt: str | None) -> Settings:
    base = (settings.templates / "base.mjml.j2").read_text()
    alt_attribute = f' alt="{alt}"' if alt is not None else ""
    logo = f'<mj-image src="https://example.org/logo.png" width="120px"{alt_attribute} />\n'
    base = base.replace(
        '<mj-text color="{{ c.on_brand }}" font-size="14px">',
        logo + '        <mj-text color="{{ c.on_brand }}" font-size="14px">',
        1,
    )
    return _custom_templates(tmp_path, settings, {"base.mjml.j2": base})


def test_every_image_has_alt_text(tmp_path: Path, settings: Settings) -> None:
    with_alt = _with_logo(tmp_path / "a", settings, "UNESCO NGO partnership")
    html = render.render_digest(sample_digest("ngo"), with_alt).html
    images = [attrs for tag, attrs in elements(html) if tag == "img"]
    assert images and all(attrs.get("alt") for attrs in images)
    without = _with_logo(tmp_path / "b", settings, None)
    with pytest.raises(TemplateError, match=r"ngo\.mjml\.j2: <img> without alt text"):
        render.render_digest(sample_digest("ngo"), without)


def test_readable_with_images_off(settings: Settings) -> None:
    html = render.render_digest(sample_digest("ngo"), settings).html
    # Everything is text: no image carries content, and no background image hides any.
    assert [tag for tag, _ in elements(html) if tag == "img"] == []
    assert "background-image" not in html and "background=" not in html


def test_preheader_is_present_and_hidden(settings: Settings) -> None:
    html = render.render_digest(sample_digest("ngo"), settings).html
    assert re.search(r'<div style="display:none;[^"]*">6 new items: Entry 1: literacy', html)


# -- hostile content ------------------------------------------------------------------------

HOSTILE_TITLE = 'Update\r\nBcc: victim@example.org\n<script>alert("t")</script>'
HOSTILE_SUMMARY = (
    '<img src=x onerror="alert(1)"> <a href="javascript:alert(2)" onclick="x()">go</a>'
)


def hostile_digest() -> Digest:
    entry = sample_entry(
        1,
        title=HOSTILE_TITLE,
        summary=HOSTILE_SUMMARY,
        link='https://ex.org/"><script>alert(3)</script>',
    )
    body_only = sample_entry(
        2, summary="", body_html="<p onmouseover=x()>Body<script>s()</script></p>"
    )
    return sample_digest(
        "public",
        title=HOSTILE_TITLE,
        sections=(Section("event", "<b onclick=x()>Events</b>", (entry, body_only)),),
    )


def test_hostile_content_is_inert_in_html(settings: Settings) -> None:
    rendered = render.render_digest(hostile_digest(), settings)
    tags = elements(rendered.html)
    assert [tag for tag, _ in tags if tag in ("script", "img", "b")] == []
    handlers = [(tag, name) for tag, attrs in tags for name in attrs if name.startswith("on")]
    assert handlers == []
    assert not any((attrs.get("href") or "").startswith("javascript:") for _, attrs in tags)
    assert "&lt;script&gt;alert(" in rendered.html
    assert 'href="https://ex.org/&#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt;"' in rendered.html


def test_subject_has_no_line_breaks(settings: Settings) -> None:
    rendered = render.render_digest(hostile_digest(), settings)
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert rendered.subject.startswith("Update Bcc: victim@example.org <script>")
    message = BytesParser(policy=policy.default).parsebytes(_eml(rendered, settings))
    assert "Bcc" not in message
    assert message["Subject"] == rendered.subject


def test_subject_keeps_no_control_character_of_a_title(settings: Settings) -> None:
    title = "Bell\x07 escape\x1b[31m red\x00 nul\x7f del \u202egnp.exe  vertical\x0bend"
    subject = render.render_digest(sample_digest("public", title=title), settings).subject
    assert subject == "Bell escape [31m red nul del gnp.exe vertical end"


def test_hostile_content_in_text_has_no_line_breaking_tricks(settings: Settings) -> None:
    text = render.render_digest(hostile_digest(), settings).text
    assert "\r" not in text
    assert "* Update Bcc: victim@example.org" in text
    assert "s()" not in text  # script bodies dropped when a summary is taken from the HTML body
    assert "\n  Body\n" in text


# -- errors ---------------------------------------------------------------------------------


def test_template_syntax_error_names_template_and_line(tmp_path: Path, settings: Settings) -> None:
    broken = '{% extends "base.mjml.j2" %}\n{% block intro %}\n{% if %}{% endblock %}\n'
    custom = _custom_templates(tmp_path, settings, {"sector.mjml.j2": broken})
    with pytest.raises(TemplateError, match=r"sector\.mjml\.j2, line 3"):
        render.render_digest(sample_digest("sector"), custom)


def test_undefined_variable_names_template_and_line(tmp_path: Path, settings: Settings) -> None:
    text = "{{ subject }}\n\n{{ no_such_thing }}\n"
    custom = _custom_templates(tmp_path, settings, {"digest.txt.j2": text})
    with pytest.raises(
        TemplateError, match=r"digest\.txt\.j2, line 3: 'no_such_thing' is undefined"
    ):
        render.render_digest(sample_digest("sector"), custom)


def test_invalid_mjml_names_the_line(tmp_path: Path, settings: Settings) -> None:
    broken = (settings.templates / "base.mjml.j2").read_text().replace("</mj-column>", "", 1)
    custom = _custom_templates(tmp_path, settings, {"base.mjml.j2": broken})
    with pytest.raises(
        TemplateError,
        match=r"invalid MJML at line \d+.*</mj-section> closes <mj-column> opened at line \d+",
    ):
        render.render_digest(sample_digest("public"), custom)


def test_unknown_mjml_tag_names_the_line(tmp_path: Path, settings: Settings) -> None:
    typo = (settings.templates / "base.mjml.j2").read_text().replace("<mj-divider", "<mj-dividr", 1)
    custom = _custom_templates(tmp_path, settings, {"base.mjml.j2": typo})
    with pytest.raises(TemplateError, match=r"unknown MJML tag <mj-dividr>"):
        render.render_digest(sample_digest("public"), custom)


def test_check_templates_compiles_everything(tmp_path: Path, settings: Settings) -> None:
    names = render.check_templates(settings)
    assert {"base.mjml.j2", "digest.txt.j2", "_intro.j2"} <= set(names)
    assert {f"{audience}.mjml.j2" for audience in AUDIENCES} <= set(names)
    broken = _custom_templates(tmp_path, settings, {"_intro.j2": "{% macro ngo( %}"})
    with pytest.raises(TemplateError, match=r"_intro\.j2, line 1"):
        render.check_templates(broken)


# -- complete messages ----------------------------------------------------------------------


def _eml(rendered: RenderedEdition, settings: Settings) -> bytes:
    edition = Edition(
        id=41,
        segment="sector:ED|en|monthly",
        audience="sector",
        key="ED",
        period="2026-11",
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        created_at=datetime(2026, 12, 1, 7, tzinfo=UTC),
    )
    template = MessageTemplate.from_edition(edition, settings)

    return template.personalise(Recipient(7, "reader@example.org", "Zoë <Reader> & co", "en"))


def _parts(message: EmailMessage) -> Iterator[tuple[str, str]]:
    for part in message.walk():
        if not part.is_multipart():
            yield part.get_content_type(), part.get_content()


@pytest.mark.parametrize("audience", AUDIENCES)
def test_every_eml_parses_with_both_parts(audience: str, settings: Settings) -> None:
    rendered = render.render_digest(sample_digest(audience), settings)
    message = BytesParser(policy=policy.default).parsebytes(_eml(rendered, settings))
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/alternative"
    parts = dict(_parts(message))
    assert set(parts) == {"text/plain", "text/html"}
    assert "Dear Zoë <Reader> & co," in parts["text/plain"]
    assert "Dear Zoë &lt;Reader&gt; &amp; co," in parts["text/html"]
    assert "[[diffusion:" not in parts["text/plain"] + parts["text/html"]
    for header in ("Message-ID", "Date", "From", "To", "List-Id", "List-Unsubscribe-Post"):
        assert message[header], header
    assert "/unsubscribe/" in message["List-Unsubscribe"]
