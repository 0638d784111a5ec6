"""Writing RSS 2.0 and Atom documents, each text escaped for the context a reader gives it.

Readers take RSS `<title>` and `<description>` as HTML, Atom text constructs as what their
`type` says. So plain text (titles, summaries) is HTML-escaped before it goes where HTML is
expected, the sanitised body goes in `content:encoded` / `<content type="html">`, and every
Atom text construct declares its type. Then everything is escaped once more for XML.
"""

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote
from xml.sax.saxutils import escape

from diffusion import i18n, links
from diffusion.config import Settings
from diffusion.contracts import DigestEntry
from diffusion.models import TAG_KEYS, Item

# Characters XML 1.0 cannot carry at all (lxml refuses them): dropped from every text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# What an HTML reader would take for markup or a character reference in a title.
_LOOKS_LIKE_MARKUP = re.compile(r"[<>]|&(?:#\d+|#x[0-9a-fA-F]+|\w+);")
_QUOTE = {'"': "&quot;"}
RSS_NAMESPACES = (
    'xmlns:atom="http://www.w3.org/2005/Atom" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/"'
)


NEW_FEED = i18n.N_("This feed is new: its first entries will appear here.")


def xml_text(value: str) -> str:
    """Text escaped for an XML element or attribute, without the characters XML forbids."""
    return escape(_NOT_XML.sub("", value), _QUOTE)


def html_of_text(value: str) -> str:
    """Plain text as HTML that shows exactly that text."""
    return html.escape(value, quote=False)


def rss_title(value: str) -> str:
    """A title for RSS, where readers may render the title as HTML: text that looks like
    markup or a character reference is HTML-escaped, so that it shows as the words it is."""
    return html_of_text(value) if _LOOKS_LIKE_MARKUP.search(value) else value


def tag_uri(settings: Settings, specific: str) -> str:
    """A tag: URI (RFC 4151) under the configured authority: it never depends on base_url."""
    authority = settings.feeds.tag_authority or settings.from_address.rpartition("@")[2]
    return f"tag:{authority or 'diffusion.invalid'},{settings.feeds.tag_date}:{specific}"


def entry_id(settings: Settings, item: Item) -> str:
    """A stable id: the item's guid when it is a URI, else a tag: URI made from it."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$", item.guid):
        return item.guid
    return tag_uri(settings, f"item:{quote(item.guid, safe='')}")


def _atom_date(moment: datetime) -> str:
    return moment.isoformat()


def _rss_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def render_entry(
    settings: Settings, item: Item, entry: DigestEntry, feed_language: str, fmt: str
) -> str:
    """One `<entry>` or `<item>`, as text to place in a document."""
    identifier = xml_text(entry_id(settings, item))
    link = entry.link
    if not link and item.public and item.id:
        link = links.item_url(settings, item.guid, item.id)  # its own page, when it has none
    title = entry.title or i18n.words(feed_language).pgettext("feed entry", "(untitled)")
    summary = entry.summary
    body = entry.body_html
    categories = [
        (xml_text(value), xml_text(tag_uri(settings, name)))
        for name in TAG_KEYS
        for value in sorted(set(entry.tags.get(name, ())))
    ]
    if fmt == "atom":
        lang = f' xml:lang="{xml_text(entry.language)}"' if entry.language != feed_language else ""
        parts = [
            f"  <entry{lang}>",
            f"    <id>{identifier}</id>",
            f'    <title type="text">{xml_text(title)}</title>',
            f"    <updated>{_atom_date(entry.published_at)}</updated>",
            f"    <published>{_atom_date(entry.published_at)}</published>",
        ]
        if link:
            parts.append(f'    <link rel="alternate" type="text/html" href="{xml_text(link)}"/>')
        if summary:
            parts.append(f'    <summary type="text">{xml_text(summary)}</summary>')
        if body:
            parts.append(f'    <content type="html">{xml_text(body)}</content>')
        elif not link:
            parts.append(f'    <content type="text">{xml_text(summary or title)}</content>')
        parts.extend(
            f'    <category term="{term}" scheme="{scheme}"/>' for term, scheme in categories
        )
        parts.append("  </entry>")
        return "\n".join(parts)
    parts = ["    <item>", f"      <title>{xml_text(rss_title(title))}</title>"]
    if link:
        parts.append(f"      <link>{xml_text(link)}</link>")
    description = html_of_text(summary) if summary else body
    if description:
        parts.append(f"      <description>{xml_text(description)}</description>")
    if body:
        parts.append(f"      <content:encoded>{xml_text(body)}</content:encoded>")
    parts.append(f'      <guid isPermaLink="false">{identifier}</guid>')
    parts.append(f"      <pubDate>{_rss_date(entry.published_at)}</pubDate>")
    if entry.language != feed_language:
        parts.append(f"      <dc:language>{xml_text(entry.language)}</dc:language>")
    parts.extend(
        f'      <category domain="{scheme}">{term}</category>' for term, scheme in categories
    )
    parts.append("    </item>")
    return "\n".join(parts)


@dataclass(frozen=True)
class FeedDocument:
    """What a feed says of itself: title, language, addresses, author and date."""

    settings: Settings
    path: str  # under feeds/, e.g. "sector/ED.en.atom"
    title: str
    description: str
    language: str
    alternate: str  # the HTML page of the same items
    updated: datetime

    def document(self, fmt: str, entries: Sequence[str]) -> bytes:
        settings = self.settings
        self_url = xml_text(links.feed_url(settings, self.path))
        alternate = xml_text(self.alternate)
        description = self.description
        if not entries:
            description = i18n.words(self.language).gettext(NEW_FEED)
        author = xml_text(settings.organisation_name)
        lang = xml_text(self.language)
        head: list[str] = ["<?xml version='1.0' encoding='UTF-8'?>"]
        if fmt == "atom":
            feed_id = xml_text(tag_uri(self.settings, "feed:" + self.path.rsplit(".", 1)[0]))
            head += [
                f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{lang}">',
                f"  <id>{feed_id}</id>",
                f'  <title type="text">{xml_text(self.title)}</title>',
                f'  <subtitle type="text">{xml_text(description)}</subtitle>',
                f"  <updated>{_atom_date(self.updated)}</updated>",
                f"  <author><name>{author}</name><uri>{xml_text(settings.base_url)}</uri></author>",
                f'  <link rel="self" type="application/atom+xml" href="{self_url}"/>',
                f'  <link rel="alternate" type="text/html" href="{alternate}"/>',
                "  <generator>Diffusion</generator>",
            ]
            return "\n".join([*head, *entries, "</feed>", ""]).encode()
        editor = xml_text(f"{settings.from_address} ({settings.organisation_name})")
        head += [
            f'<rss version="2.0" {RSS_NAMESPACES}>',
            "  <channel>",
            f"    <title>{xml_text(rss_title(self.title))}</title>",
            f"    <link>{alternate}</link>",
            f"    <description>{xml_text(html_of_text(description))}</description>",
            f'    <atom:link rel="self" type="application/rss+xml" href="{self_url}"/>',
            f"    <language>{lang}</language>",
            f"    <managingEditor>{editor}</managingEditor>",
            f"    <lastBuildDate>{_rss_date(self.updated)}</lastBuildDate>",
            f"    <pubDate>{_rss_date(self.updated)}</pubDate>",
            "    <generator>Diffusion</generator>",
            "    <docs>https://www.rssboard.org/rss-specification</docs>",
        ]
        return "\n".join([*head, *entries, "  </channel>", "</rss>", ""]).encode()
