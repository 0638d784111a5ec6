"""RSS 2.0 and Atom feeds per audience segment, Sector, country and Field Office (public items)."""

import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import pycountry
from feedgen.feed import FeedGenerator
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db, i18n
from diffusion.audiences import (
    Directory,
    FeedFamily,
    Routable,
    RoutingIndex,
    RoutingRules,
    load_rules,
    read_directory,
    routes_to,
)
from diffusion.config import Settings
from diffusion.digest import DigestEntry, entry_for, key_name
from diffusion.links import feed_url
from diffusion.models import SECTORS, TAG_KEYS, Item
from diffusion.vocabulary import audience_title

FEED_MAX_ENTRIES = 50
FORMATS = ("rss", "atom")
# A feed with no entry yet still needs a date; a fixed one keeps rebuilds byte-identical.
NO_ENTRY_DATE = datetime(2000, 1, 1, tzinfo=UTC)
# Characters XML 1.0 cannot carry at all (lxml refuses them): dropped from every text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# The audience whose title names each key kind, for feeds of a family.
_FAMILY_KEY_AUDIENCE = {
    "organisation": "ngo",
    "sector": "sector",
    "field_office": "field_office",
    "country": "member_state",
}


@dataclass
class FeedsReport:
    """What `build_feeds` wrote: files changed, files left as they were, entries in all."""

    out: Path
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    entries: int = 0
    removed: list[str] = field(default_factory=list)  # feeds of keys no longer known

    @property
    def files(self) -> int:
        return len(self.written) + self.unchanged

    def summary(self) -> str:
        removed = f", {len(self.removed)} removed" if self.removed else ""
        return (
            f"{self.files} feeds ({len(self.written)} written, {self.unchanged} unchanged{removed})"
        )


def _xml_text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _keys(family: FeedFamily, directory: Directory, items: Sequence[Item]) -> list[str]:
    """The keys a family has feeds for: every Sector, office, NGO, or country known."""
    if family.key_type == "none":
        return [""]
    if family.key_type == "sector":
        return sorted(SECTORS)
    if family.key_type == "field_office":
        return sorted(directory.offices)
    if family.key_type == "organisation":
        return sorted(directory.organisations)
    countries = set(directory.countries())
    for item in items:
        countries.update(code.upper() for code in item.tags.get("countries", ()))
    return sorted(code for code in countries if pycountry.countries.get(alpha_2=code) is not None)


def feed_items(
    items: Iterable[Item],
    rules: RoutingRules,
    family: FeedFamily,
    key: str,
    directory: Directory,
    index: RoutingIndex | None = None,
) -> list[Item]:
    """The public items a feed carries, newest first, at most FEED_MAX_ENTRIES."""
    specs = [rules.audience(name) for name in family.audiences]
    view = index.view if index is not None else Routable.of
    chosen = []
    for item in items:
        seen = view(item)
        if seen.public and any(
            routes_to(seen, spec, key, directory, public_only=True) for spec in specs
        ):
            chosen.append(item)
    chosen.sort(key=lambda item: (-item.published_at.timestamp(), item.id or 0))
    return chosen[:FEED_MAX_ENTRIES]


def entry_id(settings: Settings, item: Item) -> str:
    """A stable id: the item's guid when it is a URI, else a tag: URI made from it."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$", item.guid):
        return item.guid
    host = urlsplit(settings.base_url).hostname or "diffusion.invalid"
    return f"tag:{host},2026:item:{quote(item.guid, safe='')}"


def render_feed(
    settings: Settings,
    *,
    path: str,
    title: str,
    description: str,
    language: str,
    items: Sequence[Item],
    fmt: str,
) -> bytes:
    """One feed document; its dates come from its newest item, so a rebuild is byte-identical."""
    self_url = feed_url(settings, path)
    generator = FeedGenerator()
    generator.id(self_url)
    generator.title(_xml_text(title))
    generator.description(_xml_text(description))
    generator.link(href=self_url, rel="self")
    # feedgen gives RSS's <link> the last link: the site, not the feed itself.
    generator.link(href=settings.base_url, rel="alternate")
    generator.language(language)
    generator.generator("Diffusion")
    newest = max((item.published_at for item in items), default=NO_ENTRY_DATE)
    generator.updated(newest)
    generator.pubDate(newest)
    # feedgen prepends by default; append keeps our newest-first order.
    for item in items:
        _add_entry(generator, settings, item, entry_for(item, language), language)
    if fmt == "atom":
        return bytes(generator.atom_str(pretty=True))
    return bytes(generator.rss_str(pretty=True))


def _add_entry(
    generator: FeedGenerator, settings: Settings, item: Item, entry: DigestEntry, language: str
) -> None:
    feed_entry = generator.add_entry(order="append")
    identifier = entry_id(settings, item)
    feed_entry.id(identifier)
    feed_entry.guid(identifier, permalink=False)
    untitled = i18n.words(language).pgettext("feed entry", "(untitled)")
    feed_entry.title(_xml_text(entry.title) or untitled)
    if entry.link:
        feed_entry.link(href=entry.link, rel="alternate")
    summary = _xml_text(entry.summary)
    if summary:
        feed_entry.summary(summary)
    body = _xml_text(entry.body_html)
    if body:
        feed_entry.content(body, type="html")
    elif not entry.link:
        feed_entry.content(summary or _xml_text(entry.title), type="text")
    feed_entry.published(entry.published_at)
    feed_entry.updated(entry.published_at)
    for name in TAG_KEYS:
        for value in sorted(set(entry.tags.get(name, ()))):
            feed_entry.category(term=_xml_text(value), scheme=_scheme(settings, name))


def _scheme(settings: Settings, tag: str) -> str:
    host = urlsplit(settings.base_url).hostname or "diffusion.invalid"
    return f"tag:{host},2026:{tag}"


def _titles(
    settings: Settings, family: FeedFamily, key: str, language: str, directory: Directory
) -> tuple[str, str]:
    audience = _FAMILY_KEY_AUDIENCE.get(family.key_type, family.audiences[0])
    description = audience_title(family.audiences[0], language)
    who = key_name(audience, key, language, directory)
    if who and i18n.direction(language) == "rtl":
        who = i18n.isolate(who)
    name = i18n.newsletter_name(settings, language)
    if not who:
        return name, description
    title = i18n.words(language).pgettext(
        "feed title", "%(who)s — %(newsletter)s", who=who, newsletter=name
    )
    return title, description


def write_if_changed(path: Path, content: bytes) -> bool:
    """Write atomically (temporary file, then rename), and only when the bytes differ."""
    if path.is_file() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            handle.write(content)
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return True


def write_feeds(
    items: Sequence[Item],
    directory: Directory,
    rules: RoutingRules,
    settings: Settings,
    *,
    out: Path,
) -> FeedsReport:
    """Every feed of every family, key and language, from plain data, written under `out`."""
    report = FeedsReport(out=out)
    index = RoutingIndex(items)
    produced: set[str] = set()
    for family in rules.feeds.values():
        for key in _keys(family, directory, items):
            chosen = feed_items(items, rules, family, key, directory, index)
            stem = f"{family.name}/{key}" if key else family.name
            for language in settings.languages:
                title, description = _titles(settings, family, key, language, directory)
                for fmt in FORMATS:
                    path = f"{stem}.{language}.{fmt}"
                    content = render_feed(
                        settings,
                        path=path,
                        title=title,
                        description=description,
                        language=language,
                        items=chosen,
                        fmt=fmt,
                    )
                    report.entries += len(chosen)
                    produced.add(path)
                    if write_if_changed(out / path, content):
                        report.written.append(path)
                    else:
                        report.unchanged += 1
    report.removed = _remove_stale(out, rules, settings.languages, produced)
    return report


def _remove_stale(
    out: Path, rules: RoutingRules, languages: Sequence[str], produced: set[str]
) -> list[str]:
    """Delete our feeds of keys that are gone (an NGO removed from the directory)."""
    gone = []
    for family in rules.feeds.values():
        folder = out / family.name
        if family.key_type == "none" or not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            parts = path.name.rsplit(".", 2)
            ours = len(parts) == 3 and parts[1] in languages and parts[2] in FORMATS
            relative = f"{family.name}/{path.name}"
            if ours and path.is_file() and relative not in produced:
                path.unlink()
                gone.append(relative)
    return gone


def build_feeds(engine: Engine, settings: Settings, *, out: Path, now: datetime) -> FeedsReport:
    """Load the public items published by `now` and the directory, and write every feed."""
    rules = load_rules(settings.routing)
    with db.session_scope(engine) as session:
        directory = read_directory(session)
        items = list(
            session.exec(
                select(Item)
                .where(col(Item.public).is_(True), col(Item.published_at) <= now)
                .order_by(col(Item.published_at).desc(), col(Item.id))
            ).all()
        )
    return write_feeds(items, directory, rules, settings, out=out)
