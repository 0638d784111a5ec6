"""The HTTP server of `diffusion serve`: uvicorn with limits on connections and a redacted log.

Uvicorn closes a connection idle after a response (`timeout_keep_alive`) but never one that
was opened and sends nothing, or sends its request line a byte at a time: 1,100 of those used
up the file descriptors and /healthz stopped answering. Here a connection must send a complete
request head within `web_header_timeout_seconds`, the number of connections is capped below
the descriptors the process may open, and that limit is raised to what the system allows.
"""

import asyncio
import logging
import re
import resource
from typing import Any

from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from diffusion.config import Settings

log = logging.getLogger("diffusion.web")
# Descriptors kept for the database, the log, the scheduler and SMTP beside the connections.
SPARE_DESCRIPTORS = 256
# What a token looks like in a path or a query: the access log keeps the page, not the key.
TOKEN_IN_PATH = re.compile(r"(/(?:confirm|unsubscribe|preferences)/)[^/?\s\"]+")
TOKEN_IN_QUERY = re.compile(r"([?&](?:sig|token)=)[^&\s\"]+")


def redact(text: str) -> str:
    """`text` with the tokens of signed links replaced by "…"."""
    return TOKEN_IN_QUERY.sub(r"\1…", TOKEN_IN_PATH.sub(r"\1…", text))


class RedactTokens(logging.Filter):
    """Drops the signed tokens from uvicorn's access lines: links that never expire."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


class HeadTimeoutProtocol(H11Protocol):
    """H11Protocol closing a connection whose request head has not arrived in time.

    The timer starts when the connection opens and again after each response; only a request
    whose head was read (a new request cycle) stops it from closing the connection.
    """

    head_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        waiting_after = self.cycle
        self.loop.call_later(self.head_timeout, self._head_timed_out, waiting_after)

    def _head_timed_out(self, waiting_after: Any) -> None:
        if self.cycle is waiting_after and not self.transport.is_closing():
            if waiting_after is None or waiting_after.response_complete:
                self.transport.close()


def raise_descriptor_limit(wanted: int) -> int:
    """Raise this process's soft limit of open files towards `wanted` (at most the hard
    limit); returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def connection_limit(settings: Settings) -> int:
    """The most connections served at once: the setting, within the descriptors available."""
    available = raise_descriptor_limit(settings.web.max_connections + SPARE_DESCRIPTORS)
    limit = min(settings.web.max_connections, available - SPARE_DESCRIPTORS)
    if limit < settings.web.max_connections:
        log.warning(
            "web_max_connections %d lowered to %d: the process may open %d files "
            "(raise `ulimit -n` or LimitNOFILE=)",
            settings.web.max_connections,
            limit,
            available,
        )
    return max(limit, 1)


def run(app: ASGIApp, settings: Settings, host: str, port: int) -> None:
    """Serve `app` until a signal stops it."""
    import uvicorn

    protocol = type(
        "Protocol", (HeadTimeoutProtocol,), {"head_timeout": settings.web.header_timeout_seconds}
    )
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=protocol,
        proxy_headers=True,
        log_config=None,
        timeout_keep_alive=settings.web.keep_alive_seconds,
        limit_concurrency=connection_limit(settings),
        h11_max_incomplete_event_size=16 * 1024,  # a request head (line and headers) at most
    )
