"""A real HTTP server for feed tests and benchmarks: configurable routes, counted requests.

In tests: `with FeedServer() as server: server.route("/a.xml", rss([...]))`, then read
`server.requests("/a.xml")` and `server.bodies_sent("/a.xml")`.
As a program (for benchmarks, in its own process):
`python tests/feedserver.py --feeds 200 --entries 50 --delay-ms 100` prints `PORT <n>` and serves
`/feed/<i>.xml` with an ETag, plus `/_stats` (JSON counts of requests and bodies sent).
"""

import argparse
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Route:
    """What the server answers on one path."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0  # seconds to wait before answering
    headers: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # the HTTP reason phrase, when not the standard one


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # many clients connect at once in the benchmark

    def __init__(self, owner: "FeedServer") -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that gave up (timeouts) reset the connection: not the server's problem


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?")[0]
        owner.record(path, dict(self.headers.items()))
        if path == "/_stats":
            self._answer(200, json.dumps(owner.stats()).encode(), "application/json")
            return
        route = owner.routes.get(path)
        if route is None:
            self._answer(404, b"not found", "text/plain")
            return
        if route.delay:
            time.sleep(route.delay)
        validators = {}
        if route.etag:
            validators["ETag"] = route.etag
        if route.last_modified:
            validators["Last-Modified"] = route.last_modified
        if route.status == 200 and self._unchanged(route):
            self._answer(304, b"", None, validators)
            return
        owner.record_body(path)
        self._answer(
            route.status, route.body, route.content_type, validators | route.headers, route.reason
        )

    def _unchanged(self, route: Route) -> bool:
        if route.etag and self.headers.get("If-None-Match"):
            return self.headers["If-None-Match"] == route.etag
        since = self.headers.get("If-Modified-Since")
        return bool(route.last_modified and since == route.last_modified)

    def _answer(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        extra: dict[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        self.send_response(status, reason)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)


class FeedServer:
    """A threaded http.server on 127.0.0.1, port 0, serving the routes it is given."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._bodies: Counter[str] = Counter()
        self.request_headers: list[tuple[str, dict[str, str]]] = []
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FeedServer":
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, body: bytes = b"", **options: Any) -> str:
        """Serve `body` on `path` (see Route for the options); returns the full URL."""
        self.routes[path] = Route(body=body, **options)
        return self.url(path)

    def record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._requests[path] += 1
            self.request_headers.append((path, headers))

    def record_body(self, path: str) -> None:
        with self._lock:
            self._bodies[path] += 1

    def requests(self, path: str) -> int:
        with self._lock:
            return self._requests[path]

    def bodies_sent(self, path: str) -> int:
        with self._lock:
            return self._bodies[path]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": sum(n for p, n in self._requests.items() if p != "/_stats"),
                "bodies": sum(self._bodies.values()),
            }


def rss(
    entries: list[dict[str, Any]],
    *,
    title: str = "Test feed",
    link: str = "http://ngo.example.org/",
    language: str | None = "en",
    encoding: str = "utf-8",
) -> bytes:
    """An RSS 2.0 document in `encoding`; an entry's keys: title, link, guid, description,
    pubDate (datetime), categories; values are escaped, so `description` holds HTML as text."""
    parts = [f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>']
    parts.append(f"<title>{escape(title)}</title><link>{escape(link)}</link>")
    if language:
        parts.append(f"<language>{language}</language>")
    for entry in entries:
        parts.append("<item>")
        for key in ("title", "link", "guid", "description"):
            if key in entry:
                parts.append(f"<{key}>{escape(str(entry[key]))}</{key}>")
        if "pubDate" in entry:
            parts.append(f"<pubDate>{format_datetime(entry['pubDate'])}</pubDate>")
        for category in entry.get("categories", ()):
            parts.append(f"<category>{escape(category)}</category>")
        parts.append("</item>")
    parts.append("</channel></rss>\n")
    return "".join(parts).encode(encoding)


def _serve_benchmark(feeds: int, entries: int, delay: float) -> None:
    with FeedServer() as server:
        for number in range(feeds):
            body = rss(
                [
                    {
                        "title": f"Feed {number}, entry {index}: literacy circles & libraries",
                        "link": f"http://ngo{number}.example.org/news/{index}",
                        "guid": f"http://ngo{number}.example.org/news/{index}",
                        "description": f"<p>Entry {index} of feed {number}: a report on "
                        f'<a href="/report/{index}">community libraries</a> and adult '
                        "literacy, with partners in three countries.</p>",
                        "categories": ["ED", "KE", "literacy"],
                    }
                    for index in range(entries)
                ],
                title=f"NGO {number}",
                link=f"http://ngo{number}.example.org/",
            )
            server.route(f"/feed/{number}.xml", body, etag=f'"v1-{number}"', delay=delay)
        print(f"PORT {server.port}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    arguments = parser.parse_args()
    _serve_benchmark(arguments.feeds, arguments.entries, arguments.delay_ms / 1000)
