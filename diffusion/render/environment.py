"""The Jinja environment of the email templates, its filters, and errors naming the line."""

import traceback
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from diffusion import i18n
from diffusion.collect.sanitize import clean_html
from diffusion.errors import TemplateError
from diffusion.render.text import plain, shorten, underline, wrap


@lru_cache(maxsize=32)
def environment(templates: Path, language: str) -> jinja2.Environment:
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
        wrap=wrap,
        underline=underline,
        plain=plain,
        # Bodies were sanitised when collected; cleaned again where they go out as HTML.
        sanitised=lambda body: markupsafe.Markup(clean_html(str(body))),
        shorten=shorten,
        day=lambda moment: i18n.format_day(moment, language),
        number=lambda number: i18n.format_number(number, language),
    )
    return env


def _template_line(exc: BaseException) -> tuple[str | None, int | None]:
    """The innermost template frame of a runtime error (Jinja rewrites tracebacks to them)."""
    name: str | None = None
    line: int | None = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and frame.filename.endswith((".j2", ".mjml", ".html", ".txt")):
            name, line = frame.filename, frame.lineno
    return name, line


def render_template(env: jinja2.Environment, names: list[str], context: Mapping[str, Any]) -> str:
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
