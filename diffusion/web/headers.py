"""Security headers on every answer: what a page may load, who may frame it, what it leaks."""

import base64
import hashlib
import re
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The web version of a sent edition is the email's HTML: inline styles everywhere, and images
# from the sites the items come from. Every other page is ours and needs nothing but its
# own <style> blocks.
EMAIL_PAGE = re.compile(r"^/archive/[0-9]+$")
STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.DOTALL)
HSTS = "max-age=31536000"


def style_hashes(templates: Path) -> list[str]:
    """CSP sources for the <style> blocks of the page templates, those of the published pages
    (templates/pages/) included; they hold no variables."""
    found: set[str] = set()
    for template in sorted(templates.rglob("*.html")):
        for block in STYLE_BLOCK.findall(template.read_text("utf-8")):
            digest = hashlib.sha256(block.encode("utf-8")).digest()
            found.add(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")
    return sorted(found)


def page_policy(templates: Path) -> str:
    """No script, no plugin, no frame, forms posted here only, styles by hash."""
    styles = " ".join(style_hashes(templates)) or "'none'"
    return (
        "default-src 'none'; script-src 'none'; "
        f"style-src {styles}; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


EMAIL_POLICY = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
    "img-src https: http: data:; font-src https:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders:
    """ASGI middleware adding the security headers an answer does not already carry.

    HSTS is sent only over https (the public address is https, or the proxy said so in
    X-Forwarded-Proto): over http it would be ignored, and on 127.0.0.1 it would stick.
    """

    def __init__(self, app: ASGIApp, templates: Path, https: bool) -> None:
        self.app = app
        self.https = https
        self.page_policy = page_policy(templates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = EMAIL_POLICY if EMAIL_PAGE.match(scope["path"]) else self.page_policy
        https = self.https or scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", policy)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, with_headers)
