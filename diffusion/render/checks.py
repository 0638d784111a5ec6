"""Template checks: MJML tags known and nested, alt text on every image, templates compiling."""

from html.parser import HTMLParser
from pathlib import Path

import jinja2
from mjml import mjml2html

from diffusion.config import Settings
from diffusion.errors import TemplateError
from diffusion.render.environment import environment

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


def to_html(source: str, template_name: str) -> str:
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


def check_templates(settings: Settings) -> list[str]:
    """Compile every email template of every configured language; raises TemplateError."""
    names: list[str] = []
    for language in settings.languages:
        env = environment(Path(settings.templates), language)
        for name in env.list_templates(filter_func=lambda n: n.endswith(".j2")):
            _render_check(env, name)
            names.append(name)
    return sorted(set(names))


def _render_check(env: jinja2.Environment, name: str) -> None:
    try:
        env.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}, line {exc.lineno}: {exc.message}") from exc
