"""Rendering: a digest to MJML, HTML and plain text, once per segment, with placeholders."""

import dataclasses
import html
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import nh3
from mjml import mjml2html

from diffusion import i18n, links
from diffusion.collect.sanitize import clean_html
from diffusion.config import Settings
from diffusion.digest import Digest, DigestEntry, ReferenceList, Section
from diffusion.errors import TemplateError
from diffusion.personalise import FIELDS, fill, placeholder
from diffusion.textwidth import display_width, wrap_width

# Gmail clips a message's HTML beyond this many bytes, hiding the rest (and the unsubscribe link).
GMAIL_CLIP_BYTES = 102_400
# When an edition must be cut to fit, summaries are shortened to this many characters too.
TRIMMED_SUMMARY_CHARS = 240
TEXT_WIDTH = 72
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

# Components of MJML 4 that mjml-python understands; anything else named mj-* is a typo.
MJML_TAGS = frozenset(
    "mjml mj-head mj-body mj-attributes mj-all mj-class mj-breakpoint mj-font mj-preview "
    "mj-style mj-title mj-raw mj-include mj-section mj-column mj-group mj-wrapper mj-hero "
    "mj-text mj-button mj-image mj-divider mj-spacer mj-table mj-social mj-social-element "
    "mj-navbar mj-navbar-link mj-carousel mj-carousel-image mj-accordion mj-accordion-element "
    "mj-accordion-title mj-accordion-text".split()
)
# Their content is raw HTML that MJML copies as it is.
MJML_ENDING_TAGS = frozenset(
    "mj-text mj-button mj-table mj-raw mj-style mj-title mj-preview mj-navbar-link "
    "mj-social-element mj-accordion-title mj-accordion-text".split()
)


@dataclass(frozen=True)
class RenderedEdition:
    """One segment's edition, with placeholders where each recipient's values go."""

    subject: str
    html: str
    text: str
    mjml: str
    # Entries and reference rows left out of the HTML to stay under Gmail's clipping size
    # (the text part always carries everything).
    trimmed: int = 0


def greeting(language: str, name: str) -> str:
    """The salutation at the top of an email: "Dear Ana," / "Bonjour Ana,"; a name of the
    other direction is isolated, so "Ana Sample" does not pull the Arabic comma to its side."""
    words = i18n.words(language)
    name = " ".join(name.split())
    if name:
        shown = i18n.isolate(name) if i18n.direction(language) == "rtl" else name
        return words.gettext("Dear %(name)s,", name=shown)
    return words.gettext("Dear reader,")


# Unicode's directional isolates are not "printable" but carry meaning in a right-to-left title.
_BIDI_ISOLATES = frozenset("\u2066\u2067\u2068\u2069")


def subject_line(title: str) -> str:
    """A header-safe subject: no CR/LF or other control characters, runs of spaces folded."""
    kept = "".join(ch if ch.isprintable() or ch in _BIDI_ISOLATES else " " for ch in title)
    return " ".join(kept.split())


# -- the Jinja environment ------------------------------------------------------------------


def _wrap(value: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap text for a terminal by display width; URLs and long words are never split,
    Chinese is broken between characters where Unicode line breaking allows it."""
    return wrap_width(str(value), width, indent, first)


def _underline(value: str, char: str = "=", width: int = TEXT_WIDTH) -> str:
    """A heading wrapped like every other line, underlined as wide as its longest line
    (by display width: a CJK character takes two columns)."""
    heading = _wrap(value, width)
    longest = max((display_width(line) for line in heading.splitlines()), default=0)
    return f"{heading}\n{char * max(longest, 3)}"


def _plain(value: str) -> str:
    """Text of an HTML fragment: every tag dropped, script and style contents too."""
    return html.unescape(nh3.clean(str(value), tags=set()))


def _shorten(value: str, chars: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= chars else text[: chars - 1].rsplit(" ", 1)[0] + "…"


@lru_cache(maxsize=32)
def _environment(templates: Path, language: str) -> jinja2.Environment:
    """One environment per template folder and language, with that language's catalogue."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        # Escape everything that goes into MJML/HTML; the plain-text template is not escaped.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml.j2", "html.j2", "mjml", "html"),
            disabled_extensions=("txt.j2", "txt"),
            default_for_string=True,
            default=False,
        ),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.policies["ext.i18n.trimmed"] = True  # msgids as `pybabel extract` writes them
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(language), newstyle=True
    )
    rtl = i18n.direction(language) == "rtl"
    env.filters.update(
        # Text of another direction (a name, a code, an address) inside the reader's text:
        # <bdi> in HTML, Unicode isolates in the text part of a right-to-left email.
        bdi=lambda value: markupsafe.Markup("<bdi>%s</bdi>") % value if value else value,
        isolate=lambda value: i18n.isolate(str(value)) if rtl and value else value,
        items=lambda values: i18n.format_items(values, language),
        wrap=_wrap,
        underline=_underline,
        plain=_plain,
        # Bodies were sanitised when collected; cleaned again where they go out as HTML.
        sanitised=lambda body: markupsafe.Markup(clean_html(str(body))),
        shorten=_shorten,
        day=lambda moment: i18n.format_day(moment, language),
        number=lambda number: i18n.format_number(number, language),
    )
    return env


# -- errors, with the template and line -----------------------------------------------------


def _template_line(exc: BaseException) -> tuple[str | None, int | None]:
    """The innermost template frame of a runtime error (Jinja rewrites tracebacks to them)."""
    name: str | None = None
    line: int | None = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and frame.filename.endswith((".j2", ".mjml", ".html", ".txt")):
            name, line = frame.filename, frame.lineno
    return name, line


def _render(env: jinja2.Environment, names: list[str], context: Mapping[str, Any]) -> str:
    try:
        template = env.select_template(names)
        return template.render(context)
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or exc.name or names[0]
        raise TemplateError(
            f"{where}, line {exc.lineno}: {exc.message}; fix the template and preview again"
        ) from exc
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"email template {exc.name} not found in {_folder(env)}") from exc
    except jinja2.TemplateError as exc:
        frame_name, line = _template_line(exc)
        raise TemplateError(
            f"{frame_name or names[0]}, line {line or '?'}: {exc}; fix the template"
        ) from exc


def _folder(env: jinja2.Environment) -> str:
    loader = env.loader
    return str(loader.searchpath) if isinstance(loader, jinja2.FileSystemLoader) else "?"


class _MjmlChecker(HTMLParser):
    """Finds the first misnested, unclosed or unknown mj-* tag, with its line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int]] = []
        self.problem: tuple[int, str] | None = None

    def _note(self, line: int, message: str) -> None:
        if self.problem is None:
            self.problem = (line, message)

    def _raw(self) -> bool:
        return bool(self.stack) and self.stack[-1][0] in MJML_ENDING_TAGS

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        if tag == "mjml" or tag.startswith("mj-"):
            if tag not in MJML_TAGS:
                self._note(line, f"unknown MJML tag <{tag}>")
            elif self._raw():
                self._note(line, f"<{tag}> inside <{self.stack[-1][0]}>, which holds only HTML")
            self.stack.append((tag, line))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mjml" or tag.startswith("mj-"):
            self.handle_starttag(tag, attrs)
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if not (tag == "mjml" or tag.startswith("mj-")):
            return
        line = self.getpos()[0]
        if not self.stack or self.stack[-1][0] != tag:
            opened = (
                f"<{self.stack[-1][0]}> opened at line {self.stack[-1][1]}"
                if self.stack
                else "no tag"
            )
            self._note(line, f"</{tag}> closes {opened}")
            if any(name == tag for name, _ in self.stack):
                while self.stack and self.stack.pop()[0] != tag:
                    pass
            return
        self.stack.pop()

    def finish(self) -> None:
        self.close()
        if self.stack:
            tag, line = self.stack[-1]
            self._note(line, f"<{tag}> is never closed")


def _mjml_problem(source: str) -> tuple[int, str] | None:
    checker = _MjmlChecker()
    checker.feed(source)
    checker.finish()
    return checker.problem


def _to_html(source: str, template_name: str) -> str:
    problem = _mjml_problem(source)
    error: str | None = None
    if problem is None:
        try:
            out = str(mjml2html(source))
            _check_images(out, template_name)
            return out
        except ValueError as exc:  # mjml-python reports parse errors as ValueError, no position
            error = str(exc)
            problem = _mjml_problem(source)
    if problem:
        line, message = problem
        text = source.splitlines()[line - 1].strip() if 0 < line <= source.count("\n") + 1 else ""
        raise TemplateError(
            f"{template_name}: invalid MJML at line {line} of the rendered MJML: {message}"
            f" ({text[:80]!r}); preview with --format mjml to see it"
        )
    raise TemplateError(f"{template_name}: invalid MJML: {error}; preview with --format mjml")


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.without_alt: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and not (values.get("alt") or "").strip():
            self.without_alt.append(values.get("src") or "?")


def _check_images(out: str, template_name: str) -> None:
    """Every image needs alt text: with images off, or with a screen reader, it is all there is."""
    parser = _Images()
    parser.feed(out)
    if parser.without_alt:
        raise TemplateError(
            f"{template_name}: <img> without alt text (src={parser.without_alt[0]!r}); "
            'add alt="..." describing the image'
        )


# -- rendering ------------------------------------------------------------------------------


def _placeholders() -> dict[str, str]:
    return {field: placeholder(field) for field in FIELDS}


def _preheader(digest: Digest, language: str) -> str:
    words = i18n.words(language)
    count = digest.item_count
    if count == 0:
        return words.gettext("Nothing new this period.")
    titles = (entry.title for section in digest.sections for entry in section.entries)
    first = _shorten(next(titles), 90)
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


def _units(digest: Digest) -> int:
    return digest.item_count + sum(len(ref.rows) for ref in digest.references)


def _keep_first(digest: Digest, keep: int) -> Digest:
    """The digest with only its first `keep` entries and reference rows, in reading order."""
    sections: list[Section] = []
    for section in digest.sections:
        kept = section.entries[: max(keep, 0)]
        keep -= len(kept)
        sections.append(
            dataclasses.replace(
                section,
                entries=kept,
                more_count=section.more_count + len(section.entries) - len(kept),
            )
        )
    references: list[ReferenceList] = []
    for ref in digest.references:
        rows = ref.rows[: max(keep, 0)]
        keep -= len(rows)
        references.append(
            dataclasses.replace(
                ref, rows=rows, more_count=ref.more_count + len(ref.rows) - len(rows)
            )
        )
    return dataclasses.replace(digest, sections=tuple(sections), references=tuple(references))


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
    env = _environment(Path(settings.templates), language)
    web = web_url or digest.more_url or settings.base_url
    audience = digest.segment.audience
    html_names = [f"{audience}.mjml.j2", "base.mjml.j2"]

    text = _render(env, ["digest.txt.j2"], _context(digest, settings, web, 0, digest))
    source = _render(env, html_names, _context(digest, settings, web, 0, digest))
    out = _to_html(source, html_names[0])
    size = len(out.encode())
    trimmed = 0
    if size > max_bytes:
        # Trimming removes only inline HTML inside mj-text, which MJML copies as it is: the
        # overhead MJML adds stays about the same, so the MJML size predicts the HTML size.
        overhead = size - len(source.encode())
        total = _units(digest)
        keep = total
        for _attempt in range(8):
            keep = _fitting(env, html_names, digest, settings, web, max_bytes - overhead, keep)
            trimmed = total - keep
            source = _render(
                env, html_names, _context(_keep_first(digest, keep), settings, web, trimmed, digest)
            )
            out = _to_html(source, html_names[0])
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


def _fitting(
    env: jinja2.Environment,
    names: list[str],
    digest: Digest,
    settings: Settings,
    web: str,
    budget: int,
    high: int,
) -> int:
    """The most entries (at most `high`) whose MJML fits the budget: a binary search."""
    total = _units(digest)

    def size(keep: int) -> int:
        context = _context(_keep_first(digest, keep), settings, web, total - keep, digest)
        return len(_render(env, names, context).encode())

    low = 0
    if size(high) <= budget:
        return high
    while low < high - 1:
        middle = (low + high) // 2
        if size(middle) <= budget:
            low = middle
        else:
            high = middle
    return low


def check_templates(settings: Settings) -> list[str]:
    """Compile every email template of every configured language; raises TemplateError."""
    names: list[str] = []
    for language in settings.languages:
        env = _environment(Path(settings.templates), language)
        for name in env.list_templates(filter_func=lambda n: n.endswith(".j2")):
            _render_check(env, name)
            names.append(name)
    return sorted(set(names))


def _render_check(env: jinja2.Environment, name: str) -> None:
    try:
        env.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}, line {exc.lineno}: {exc.message}") from exc


# -- personalisation for previews ---------------------------------------------------------


def recipient_values(
    settings: Settings,
    *,
    language: str,
    name: str,
    email: str,
    subscriber_id: int,
) -> dict[str, str]:
    """A recipient's values for the placeholders, as plain text (escape them for HTML)."""
    return {
        "greeting": greeting(language, name),
        "name": name,
        "email": email,
        "unsubscribe_url": links.unsubscribe_url(settings, subscriber_id),
        "preferences_url": links.preferences_url(settings, subscriber_id),
    }


def personalise(rendered: RenderedEdition, values: Mapping[str, str]) -> tuple[str, str]:
    """The HTML and text of one recipient's copy: placeholders filled, escaped for HTML."""
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    return fill(rendered.html, escaped), fill(rendered.text, values)
