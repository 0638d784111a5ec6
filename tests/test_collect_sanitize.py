"""Sanitising: allow-listed HTML with absolute links, one-line plain text for headers."""

from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import pytest

from diffusion.collect.sanitize import clean_html, clean_text, excerpt


class _Collector(HTMLParser):
    """Reads back what a browser would see: every tag and attribute of the cleaned HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((tag, name, value) for name, value in attrs)


def read_back(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    return collector


HOSTILE = [
    '<script>alert("1")</script>',
    '<img src="x.png" onerror="alert(2)">',
    '<a href="javascript:alert(3)">click</a>',
    '<a href=" JaVaScRiPt:alert(4)">click</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD4=">data</a>',
    '<iframe src="https://evil.example.org/"></iframe>',
    '<p style="display:none">hidden</p>',
    '<svg onload="alert(5)"><circle/></svg>',
    '<form action="https://evil.example.org/"><input name="password"></form>',
    '<object data="x.swf"></object><embed src="y.swf">',
    "<style>body{display:none}</style>",
    '<math><mtext><table><mglyph><style><img src=x onerror="alert(6)">',
    '<div onmouseover="alert(7)">hover</div>',
    # Schemes the sanitiser's own defaults allow, that open another program from an email:
    # only http, https and mailto are ours.
    '<a href="ftp://files.evil.example.org/setup.exe">ftp</a>',
    '<a href="tel:+99912345">call</a>',
    '<a href="sms:+99912345">text</a>',
    '<a href="magnet:?xt=urn:btih:0">torrent</a>',
    '<a href="webcal://evil.example.org/c.ics">calendar</a>',
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_html_comes_out_inert(hostile: str) -> None:
    cleaned = read_back(clean_html(hostile, "https://ngo.example.org/news/1"))
    assert not {"script", "iframe", "style", "svg", "form", "input", "object", "embed"} & set(
        cleaned.tags
    )
    for tag, name, value in cleaned.attributes:
        assert not name.startswith("on"), (tag, name)
        assert name != "style", tag
        if name in ("href", "src"):
            assert (value or "").startswith(("https://", "http://", "mailto:")), value


def test_relative_links_and_images_are_made_absolute() -> None:
    html = (
        '<p><a href="/about">About</a> <a href="../report.pdf">Report</a> '
        '<a href="#top">Top</a> <a href="mailto:info@ngo.example.org">Mail</a> '
        '<img src="img/photo.jpg" alt="Photo"></p>'
    )
    cleaned = clean_html(html, "https://ngo.example.org/news/2026/item.html")
    links = [v for _, name, v in read_back(cleaned).attributes if name in ("href", "src")]
    assert links == [
        "https://ngo.example.org/about",
        "https://ngo.example.org/news/report.pdf",
        "https://ngo.example.org/news/2026/item.html#top",
        "mailto:info@ngo.example.org",
        "https://ngo.example.org/news/2026/img/photo.jpg",
    ]
    assert 'alt="Photo"' in cleaned
    assert 'rel="noopener noreferrer"' in cleaned


def test_without_a_base_relative_links_stay_relative_and_structure_is_kept() -> None:
    html = "<h2>Title</h2><ul><li><em>one</em></li></ul>"
    html += '<table><tr><td lang="fr">deux</td></tr></table>'
    cleaned = clean_html(html)
    assert read_back(cleaned).tags == ["h2", "ul", "li", "em", "table", "tbody", "tr", "td"]
    assert clean_html('<a href="/x">x</a>') == '<a href="/x" rel="noopener noreferrer">x</a>'


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("  Literacy\r\n circles  ", "Literacy circles"),
        ("<b>Bold</b> &amp; <i>brave</i>", "Bold & brave"),
        ('<script>alert("x")</script>Clean', "Clean"),
        ("Subject\nBcc: victim@example.org", "Subject Bcc: victim@example.org"),
        ("Null\x00byte\x07bell\x1bescape", "Nullbytebellescape"),
        ("Line\u2028separator\u0085next", "Line separator next"),
        ("a < b and c > d", "a < b and c > d"),
        ("Médellín, Dhaka — مرحبا", "Médellín, Dhaka — مرحبا"),
        ("&lt;script&gt;", "<script>"),
    ],
)
def test_clean_text_gives_one_line_of_plain_text(given: str, expected: str) -> None:
    assert clean_text(given) == expected


def test_excerpt_cuts_at_a_word_and_keeps_paragraphs_apart() -> None:
    html = "<p>First paragraph.</p><p>Second paragraph with more words.</p>"
    assert excerpt(html) == "First paragraph. Second paragraph with more words."
    short = excerpt(html, limit=30)
    assert short == "First paragraph. Second…"
    assert len(short) <= 30


def test_each_call_resolves_against_its_own_base_even_across_threads() -> None:
    bases = [f"https://ngo{n}.example.org/news/" for n in range(40)]
    with ThreadPoolExecutor(8) as pool:
        cleaned = list(pool.map(lambda base: clean_html('<a href="item">x</a>', base), bases))
    assert cleaned == [f'<a href="{base}item" rel="noopener noreferrer">x</a>' for base in bases]
    assert clean_html('<a href="item">x</a>') == '<a href="item" rel="noopener noreferrer">x</a>'
