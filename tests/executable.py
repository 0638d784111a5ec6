"""What in an HTML fragment could run: script-like elements, event handlers, script URLs."""

from html.parser import HTMLParser

RUNNING_ELEMENTS = frozenset(
    {"script", "iframe", "object", "embed", "applet", "frame", "frameset", "base"}
)
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "data", "xlink:href"})


class _Finder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in RUNNING_ELEMENTS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            scheme = "".join((value or "").split()).lower()
            if name in URL_ATTRIBUTES and scheme.startswith(("javascript:", "vbscript:", "data:")):
                self.found.append(f"<{tag} {name}={value!r}>")


def executable(fragment: str) -> list[str]:
    """The elements and attributes of `fragment` a browser would run; [] when inert."""
    finder = _Finder()
    finder.feed(fragment)
    finder.close()
    return finder.found
