"""Editorial entries: Markdown files with front matter, written by editors, imported as items."""

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import frontmatter
import yaml
from markdown_it import MarkdownIt
from sqlmodel import Session

from diffusion import validate
from diffusion.collect.feeds import SUMMARY_LIMIT, content_hash
from diffusion.collect.items import check_tags, upsert_items
from diffusion.collect.sanitize import clean_html, clean_text, excerpt
from diffusion.errors import InvalidInput
from diffusion.models import TAG_KEYS, Item
from diffusion.rows import ImportReport

T = TypeVar("T")
GUID_PREFIX = "urn:diffusion:entry:"
FIELDS = ("kind", "title", "date", "language", "link", "guid", "public", "summary", "translations")
TRANSLATION_FIELDS = ("title", "summary", "body", "link")
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w-]*)\s*:")
_markdown = MarkdownIt("commonmark", {"typographer": True}).enable(["table", "strikethrough"])


class _Problems:
    """The problems of one file, each at the line of the front-matter key concerned."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.found: list[str] = []
        self.lines: dict[str, int] = {}
        lines = text.splitlines()
        if lines and lines[0].strip() == "---":
            for number, line in enumerate(lines[1:], start=2):
                if line.strip() == "---":
                    break
                match = _KEY_LINE.match(line)
                if match:
                    # Top-level keys win over nested ones of the same name (tags: {sectors: ...}).
                    key = match.group(2)
                    if not match.group(1) or key not in self.lines:
                        self.lines[key] = number

    def add(self, key: str | None, reason: str, line: int | None = None) -> None:
        line = line or (self.lines.get(key) if key else None) or (1 if key else None)
        where = f"{self.path}:{line}" if line else str(self.path)
        self.found.append(f"{where}: {reason}")


def import_entries(
    session: Session, path: Path, *, now: datetime, default_language: str = "en"
) -> ImportReport:
    """Import one entry file, or every `.md` file under a folder; bad files are reported.

    Each bad file is reported as FILE:LINE: reason and skipped; the good ones are stored, and
    importing again updates them in place (same guid).
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or folder of Markdown entries")
    report = ImportReport(str(path))
    files = sorted(path.rglob("*.md")) if path.is_dir() else [path]
    items: list[Item] = []
    owners: dict[str, Path] = {}
    for file in files:
        item, problems = read_entry(file, now=now, default_language=default_language)
        if item is not None and item.guid in owners:
            problems.add(
                "guid",
                f"guid {item.guid!r} is also the guid of {owners[item.guid]}; "
                "give one of them its own `guid:`",
            )
            item = None
        report.problems.extend(problems.found)
        if item is not None:
            owners[item.guid] = file
            items.append(item)
    created, updated = upsert_items(session, items, now=now)
    report.created, report.updated = created, updated
    report.unchanged = len(items) - created - updated
    return report


def read_entry(
    path: Path, *, now: datetime, default_language: str = "en"
) -> tuple[Item | None, _Problems]:
    """One entry file as an unsaved item, or None and the reasons it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems = _Problems(path, "")
        problems.add(None, f"cannot read as UTF-8 text: {exc}")
        return None, problems
    problems = _Problems(path, text)
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # The YAML starts on line 2, after the opening `---`.
        line = mark.line + 2 if mark is not None else None
        problems.add(None, f"front matter is not valid YAML: {getattr(exc, 'problem', exc)}", line)
        return None, problems
    except ValueError as exc:  # YAML read a timestamp that is no date, e.g. 2026-13-45
        problems.add("date", f"date: not a valid date ({exc}); write it as 2026-11-02")
        return None, problems
    meta: dict[str, Any] = dict(post.metadata)
    if not meta:
        problems.add(None, "no front matter: start the file with --- and kind:, title:, date:")
        return None, problems
    item = _item(path, meta, post.content, problems, now=now, default_language=default_language)
    return (item if not problems.found else None), problems


def _item(
    path: Path,
    meta: dict[str, Any],
    body: str,
    problems: _Problems,
    *,
    now: datetime,
    default_language: str,
) -> Item | None:
    for key in meta:
        if key not in FIELDS and key not in TAG_KEYS and key != "tags":
            problems.add(key, f"unknown key {key!r}; known: {', '.join(FIELDS + TAG_KEYS)}")
    kind = _check(problems, "kind", _kind, meta.get("kind"))
    title = clean_text(str(meta.get("title") or ""))
    if not title:
        problems.add("title", "title: missing or empty")
    published = _check(problems, "date", _date, meta.get("date"))
    language = _check(problems, "language", _language, meta.get("language") or default_language)
    link = _check(problems, "link", _link, meta.get("link"))
    public = meta.get("public", True)
    if not isinstance(public, bool):
        problems.add("public", f"public: {public!r} is not true or false")
    tags = _tags(meta, problems)
    translations = _translations(meta.get("translations"), problems)
    body_html = clean_html(_markdown.render(body), link) if body.strip() else ""
    summary = clean_text(str(meta.get("summary") or "")) or excerpt(body_html, SUMMARY_LIMIT)
    if problems.found or kind is None or published is None or language is None:
        return None
    guid = str(meta.get("guid") or "").strip() or GUID_PREFIX + path.stem
    return Item(
        kind=kind,
        guid=guid,
        link=link,
        title=title,
        summary=summary,
        body_html=body_html,
        language=language,
        translations=translations,
        tags=tags,
        public=bool(public),
        published_at=published,
        collected_at=now,
        content_hash=content_hash(title, summary, body_html, link),
        source_id=None,
        origin="editorial",
    )


def _check(problems: _Problems, key: str, check: Callable[[Any], T], value: Any) -> T | None:
    try:
        return check(value)
    except InvalidInput as exc:
        problems.add(key, str(exc) if str(exc).startswith(f"{key}:") else f"{key}: {exc}")
        return None


def _kind(value: Any) -> str:
    return validate.kind(value, field="kind")


def _language(value: Any) -> str:
    return validate.language(value, field="language")


def _date(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif value is None or value == "":
        raise InvalidInput("date: missing; write the publication date, e.g. date: 2026-11-02")
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise InvalidInput(
                f"date: {value!r} is not a date such as 2026-11-02 or 2026-11-02T10:00:00+01:00"
            ) from exc
    # A date without a zone is taken as UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _link(value: Any) -> str | None:
    if value is None or value == "":
        return None
    link = str(value).strip()
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"link: {link!r} is not an http:// or https:// address")
    return link


def _tags(meta: Mapping[str, Any], problems: _Problems) -> dict[str, list[str]]:
    raw: dict[str, Any] = {key: meta[key] for key in TAG_KEYS if key in meta}
    nested = meta.get("tags")
    if isinstance(nested, Mapping):
        for key, value in nested.items():
            raw[str(key)] = list(raw.get(str(key), [])) + (
                list(value) if isinstance(value, list) else [value]
            )
    elif nested is not None:
        problems.add("tags", "tags: expected a mapping such as {sectors: [ED], countries: [KE]}")
    tags: dict[str, list[str]] = {}
    for key, value in raw.items():
        try:
            tags.update(check_tags({key: value}))
        except InvalidInput as exc:
            problems.add(key, str(exc))
    return tags


def _translations(value: Any, problems: _Problems) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add("translations", "translations: expected {fr: {title:, summary:, body:}}")
        return {}
    translations: dict[str, dict[str, str]] = {}
    for language, fields in value.items():
        code = _check(problems, "translations", _language, language)
        if code is None:
            continue
        if not isinstance(fields, Mapping) or not clean_text(str(fields.get("title") or "")):
            problems.add("translations", f"translations: {language}: needs at least a title")
            continue
        unknown = sorted(set(map(str, fields)) - set(TRANSLATION_FIELDS))
        if unknown:
            problems.add(
                "translations",
                f"translations: {language}: unknown key {unknown[0]!r}; "
                f"known: {', '.join(TRANSLATION_FIELDS)}",
            )
            continue
        link = _check(problems, "translations", _link, fields.get("link"))
        body = str(fields.get("body") or "")
        body_html = clean_html(_markdown.render(body), link) if body.strip() else ""
        translation = {
            "title": clean_text(str(fields["title"])),
            "summary": clean_text(str(fields.get("summary") or ""))
            or excerpt(body_html, SUMMARY_LIMIT),
            "body_html": body_html,
        }
        if link:
            translation["link"] = link
        translations[code] = translation
    return translations
