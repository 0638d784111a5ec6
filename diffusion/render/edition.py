"""Rendering: a digest to MJML, HTML and plain text, once per segment, with placeholders."""

import dataclasses
from pathlib import Path
from typing import Any

from diffusion import i18n, links
from diffusion.config import Settings
from diffusion.contracts import Digest, DigestEntry, RenderedEdition
from diffusion.errors import TemplateError
from diffusion.personalise import FIELDS, placeholder
from diffusion.render.checks import to_html
from diffusion.render.environment import environment, render_template
from diffusion.render.fitting import (
    GMAIL_CLIP_BYTES,
    TRIMMED_SUMMARY_CHARS,
    keep_first,
    most_that_fit,
    units,
)
from diffusion.render.text import shorten, subject_line

# Audiences whose key is a country.
COUNTRY_AUDIENCES = ("member_state", "national_commission")

# The only colours the templates use, as (name: value). Every text/background pair in
# COLOUR_PAIRS is checked for WCAG AA contrast (4.5:1) by the tests.
PALETTE: dict[str, str] = {
    "page": "#eef1f4",  # outside the 600 px column
    "surface": "#ffffff",  # the column
    "text": "#1f2328",
    "muted": "#555e68",  # dates, footer
    "link": "#0b57a4",
    "brand": "#0a3d6e",  # header band and button
    "on_brand": "#ffffff",
    "notice_bg": "#fff4d6",
    "notice": "#4d3300",
    "rule": "#d0d7de",  # borders only, never behind text
}
COLOUR_PAIRS: tuple[tuple[str, str], ...] = (
    ("text", "surface"),
    ("muted", "surface"),
    ("link", "surface"),
    ("on_brand", "brand"),
    ("notice", "notice_bg"),
    ("link", "notice_bg"),
    ("muted", "page"),
    ("link", "page"),
    ("text", "page"),
)


# -- the Jinja environment ------------------------------------------------------------------


# -- errors, with the template and line -----------------------------------------------------


# -- rendering ------------------------------------------------------------------------------


def _placeholders() -> dict[str, str]:
    return {field: placeholder(field) for field in FIELDS}


def _preheader(digest: Digest, language: str) -> str:
    words = i18n.words(language)
    count = digest.item_count
    if count == 0:
        return words.gettext("Nothing new this period.")
    titles = (entry.title for section in digest.sections for entry in section.entries)
    first = shorten(next(titles), 90)
    if i18n.direction(language) == "rtl":
        first = i18n.isolate(first)  # an English title after Arabic words keeps its own order
    lead = words.ngettext("%(num)s new item", "%(num)s new items", count)
    return subject_line(words.gettext("%(label)s: %(value)s", label=lead, value=first))


def _context(
    digest: Digest, settings: Settings, web_url: str, trimmed: int, full: Digest
) -> dict[str, Any]:
    language = digest.segment.language
    return {
        "digest": digest,
        "segment": digest.segment,
        "audience": digest.segment.audience,
        "key": digest.segment.key,
        "lang": language,
        "dir": i18n.direction(language),
        "align": "right" if i18n.direction(language) == "rtl" else "left",
        "subject": subject_line(digest.title),
        "preheader": _preheader(full, language),
        "period_label": _period_label(digest, language),
        "organisation": i18n.newsletter_name(settings, language),
        "web_url": web_url,
        "more_url": digest.more_url or web_url,
        "trimmed": trimmed,
        "trimmed_summary_chars": TRIMMED_SUMMARY_CHARS if trimmed else 0,
        "palette": PALETTE,
        "p": _placeholders(),
        "language_name": lambda code: i18n.language_name(code, language),
        "direction": i18n.direction,
        "zip": zip,
    }


def _period_label(digest: Digest, language: str) -> str:
    if "-W" in digest.period.label:
        return i18n.words(language).gettext(
            "week of %(day)s", day=i18n.format_day(digest.period.start, language)
        )
    return i18n.format_month(digest.period.start, language)


def with_item_pages(digest: Digest, settings: Settings) -> Digest:
    """The digest with each public entry that has no link of its own linked to its web page
    (an editor's entry, a feed entry without a link): every title then leads somewhere."""

    def linked(entry: DigestEntry) -> DigestEntry:
        if entry.link or not entry.public or not entry.guid:
            return entry
        return dataclasses.replace(entry, link=links.item_url(settings, entry.guid, entry.item_id))

    sections = tuple(
        dataclasses.replace(section, entries=tuple(linked(e) for e in section.entries))
        for section in digest.sections
    )
    # The rest of the NGO directory is on its page, narrowed to the reader's country.
    country = digest.segment.key if digest.segment.audience in COUNTRY_AUDIENCES else ""
    references = tuple(
        dataclasses.replace(
            ref, more_url=links.directory_url(settings, digest.segment.language, country)
        )
        if ref.kind == "ngo_directory" and ref.more_url is None
        else ref
        for ref in digest.references
    )
    return dataclasses.replace(digest, sections=sections, references=references)


def render_digest(
    digest: Digest,
    settings: Settings,
    *,
    web_url: str | None = None,
    max_bytes: int = GMAIL_CLIP_BYTES,
) -> RenderedEdition:
    """Render one segment's digest to MJML, HTML and text, with recipient placeholders.

    The HTML stays under `max_bytes` (Gmail's clipping size): when the whole digest does not
    fit, the last entries are left out of the HTML, summaries are shortened, and the email says
    so with a link to `digest.more_url`. The text part always carries every entry.
    """
    language = digest.segment.language
    i18n.locale_for(language)  # an unknown language fails here, by name
    digest = with_item_pages(digest, settings)
    env = environment(Path(settings.templates), language)
    web = web_url or digest.more_url or settings.base_url
    audience = digest.segment.audience
    html_names = [f"{audience}.mjml.j2", "base.mjml.j2"]

    text = render_template(env, ["digest.txt.j2"], _context(digest, settings, web, 0, digest))
    source = render_template(env, html_names, _context(digest, settings, web, 0, digest))
    out = to_html(source, html_names[0])
    size = len(out.encode())
    trimmed = 0
    if size > max_bytes:
        # Trimming removes only inline HTML inside mj-text, which MJML copies as it is: the
        # overhead MJML adds stays about the same, so the MJML size predicts the HTML size.
        overhead = size - len(source.encode())
        total = units(digest)
        keep = total

        def mjml_bytes(keep: int) -> int:
            context = _context(keep_first(digest, keep), settings, web, total - keep, digest)
            return len(render_template(env, html_names, context).encode())

        for _attempt in range(8):
            keep = most_that_fit(mjml_bytes, max_bytes - overhead, keep)
            trimmed = total - keep
            source = render_template(
                env, html_names, _context(keep_first(digest, keep), settings, web, trimmed, digest)
            )
            out = to_html(source, html_names[0])
            size = len(out.encode())
            if size <= max_bytes or keep == 0:
                break
            overhead = size - len(source.encode())
            keep = keep * 9 // 10
        if size > max_bytes:
            raise TemplateError(
                f"{html_names[0]}: even with no entries the HTML is {size} bytes, over the "
                f"{max_bytes}-byte limit; make the template smaller"
            )
    return RenderedEdition(
        subject=subject_line(digest.title), html=out, text=text, mjml=source, trimmed=trimmed
    )
