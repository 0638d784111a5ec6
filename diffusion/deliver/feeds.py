"""RSS 2.0 and Atom feeds per audience segment, Sector, country and Field Office (public items)."""

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pycountry
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from diffusion import db, i18n
from diffusion.config import Settings
from diffusion.contracts import DigestEntry
from diffusion.deliver.feedwriter import FeedDocument, render_entry, tag_uri
from diffusion.links import news_url
from diffusion.models import SECTORS, Item
from diffusion.select.digest import entry_for, key_name
from diffusion.select.directory import Directory, read_directory
from diffusion.select.keyindex import KeyIndex
from diffusion.select.matchers import Routable, RoutingIndex, routes_to
from diffusion.select.rules import FeedFamily, RoutingRules
from diffusion.vocabulary import audience_title

FEED_MAX_ENTRIES = 50
FORMATS = ("rss", "atom")
# The date of a feed without entries built without `now` (a test's plain data).
NO_ENTRY_DATE = datetime(2000, 1, 1, tzinfo=UTC)
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


def family_keys(family: FeedFamily, directory: Directory, items: Sequence[Item]) -> list[str]:
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


class _LazyViews:
    """Routable views made when an item is first routed: with full feeds, most never are."""

    def __init__(self) -> None:
        self._views: dict[int, tuple[Item, Routable]] = {}

    def view(self, item: Item) -> Routable:
        found = self._views.get(id(item))
        if found is None:
            found = self._views[id(item)] = (item, Routable.of(item))  # holds the item: ids stay
        return found[1]


def route_feeds(
    items: Iterable[Item],
    rules: RoutingRules,
    family: FeedFamily,
    keys: Sequence[str],
    directory: Directory,
    index: "RoutingIndex | _LazyViews | None" = None,
) -> dict[str, list[Item]]:
    """The items of every key's feed, as `feed_items` gives them, with each item routed once:
    it goes to the keys the directory's indexes say it can reach, not tried against them all."""
    specs = [rules.audience(name) for name in family.audiences]
    view = index.view if index is not None else Routable.of
    reach = KeyIndex(keys, family.key_type, directory)
    routed: dict[str, list[Item]] = {}
    # Newest first, so that a feed is full after its 50th item and later ones skip its key.
    ordered = sorted(items, key=lambda item: (-item.published_at.timestamp(), item.id or 0))
    full: set[str] = set()
    for item in ordered:
        if len(full) == len(keys):
            break
        for key in reach.reached(view(item), specs, skip=full):
            chosen = routed.setdefault(key, [])
            chosen.append(item)
            if len(chosen) == FEED_MAX_ENTRIES:
                full.add(key)
    return routed


def render_feed(
    settings: Settings,
    *,
    path: str,
    title: str,
    description: str,
    language: str,
    items: Sequence[Item],
    fmt: str,
    alternate: str | None = None,
    since: datetime = NO_ENTRY_DATE,
    cache: dict[tuple[int, str, str], str] | None = None,
) -> bytes:
    """One feed document; its dates come from its newest item, so a rebuild is byte-identical.

    `alternate` is the HTML page of the feed; `since` dates a feed without entries (the day it
    first appeared, kept from build to build). `cache` holds entries already written, by
    (item, language, format): an item in many feeds is written once.
    """
    feed = FeedDocument(
        settings=settings,
        path=path,
        title=title,
        description=description,
        language=language,
        alternate=alternate or settings.base_url,
        updated=max((item.published_at for item in items), default=since),
    )
    entries = []
    for item in items:
        cache_key = (item.id or 0, language, fmt)
        fragment = cache.get(cache_key) if cache is not None and item.id else None
        if fragment is None:
            entry = entry_for(item, language) if item.id is not None else _unstored(item)
            fragment = render_entry(settings, item, entry, language, fmt)
            if cache is not None and item.id:
                cache[cache_key] = fragment
        entries.append(fragment)
    return feed.document(fmt, entries)


def _unstored(item: Item) -> DigestEntry:
    return entry_for(item.model_copy(update={"id": 0}), item.language)


def feed_titles(
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


# A feed's second line says what it was built from, and since when it exists: a rebuild whose
# inputs are the same is skipped without rendering, and an empty feed keeps its first date.
_BUILD_NOTE = re.compile(rb"<!-- diffusion-build ([0-9a-f]{64}) since=(\S+) -->")
# Change when the output of feedwriter changes, so that every feed is written again.
WRITER_VERSION = "2"


def _fingerprint(item: Item) -> str:
    """What of an item can change a feed entry, hashed."""
    facts = [
        item.id,
        item.guid,
        item.content_hash,
        item.published_at.isoformat(),
        item.language,
        item.public,
        item.tags,
        item.translations,
        item.link,
    ]
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def _build_note(path: Path) -> tuple[str, datetime] | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    found = _BUILD_NOTE.search(head)
    if found is None:
        return None
    try:
        since = datetime.fromisoformat(found.group(2).decode())
    except ValueError:
        return None
    return found.group(1).decode(), since


def _with_note(content: bytes, signature: str, since: datetime) -> bytes:
    declaration, _, rest = content.partition(b"\n")
    note = f"<!-- diffusion-build {signature} since={since.isoformat()} -->".encode()
    return b"\n".join((declaration, note, rest))


def write_feeds(
    items: Sequence[Item],
    directory: Directory,
    rules: RoutingRules,
    settings: Settings,
    *,
    out: Path,
    now: datetime = NO_ENTRY_DATE,
) -> FeedsReport:
    """Every feed of every family, key and language, from plain data, written under `out`.

    A feed whose items, titles and settings are those it was last built from is left as it is,
    unread beyond its first line. `now` dates the feeds that appear without entries.
    """
    report = FeedsReport(out=out)
    index = _LazyViews()
    produced: set[str] = set()
    fingerprints: dict[int, str] = {}
    cache: dict[tuple[int, str, str], str] = {}
    common = [
        WRITER_VERSION,
        settings.base_url,
        settings.organisation_name,
        settings.from_address,
        tag_uri(settings, ""),
    ]
    for family in rules.feeds.values():
        keys = family_keys(family, directory, items)
        routed = route_feeds(items, rules, family, keys, directory, index)
        for key in keys:
            chosen = routed.get(key, [])
            chosen_prints = [
                fingerprints.get(id(item)) or fingerprints.setdefault(id(item), _fingerprint(item))
                for item in chosen
            ]
            stem = f"{family.name}/{key}" if key else family.name
            for language in settings.languages:
                title, description = feed_titles(settings, family, key, language, directory)
                for fmt in FORMATS:
                    path = f"{stem}.{language}.{fmt}"
                    produced.add(path)
                    report.entries += len(chosen)
                    signature = hashlib.sha256(
                        json.dumps([*common, path, title, description, chosen_prints]).encode()
                    ).hexdigest()
                    target = out / path
                    note = _build_note(target)
                    if note is not None and note[0] == signature:
                        report.unchanged += 1
                        continue
                    since = note[1] if note is not None else now
                    content = render_feed(
                        settings,
                        path=path,
                        title=title,
                        description=description,
                        language=language,
                        items=chosen,
                        fmt=fmt,
                        alternate=news_url(settings, family.name, key, language),
                        since=since,
                        cache=cache,
                    )
                    if write_if_changed(target, _with_note(content, signature, since)):
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


def build_feeds(
    engine: Engine, settings: Settings, *, rules: RoutingRules, out: Path, now: datetime
) -> FeedsReport:
    """Load the public items published by `now` and the directory, and write every feed."""
    with db.session_scope(engine) as session:
        directory = read_directory(session)
        items = list(
            session.exec(
                select(Item)
                .where(col(Item.public).is_(True), col(Item.published_at) <= now)
                .order_by(col(Item.published_at).desc(), col(Item.id))
            ).all()
        )
    return write_feeds(items, directory, rules, settings, out=out, now=now)
