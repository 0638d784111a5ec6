"""Limits on what a request may send: the size of its body, and the numbers in its path."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Ids are PostgreSQL `integer` columns: a larger number in a path names nothing (404), and must
# not reach the database, which would refuse it with an error (500).
MAX_ROW_ID = 2**31 - 1


def row_id_in_range(value: int) -> bool:
    return 0 < value <= MAX_ROW_ID


class BodyTooLarge(Exception):
    """A request body went past the limit while it was being read."""


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` gets 413 and the connection is closed.

    A declared Content-Length over the limit is refused before a byte of the body is read; a
    body without one (chunked) is counted as it arrives and refused as soon as it passes the
    limit. Either way the server holds at most `max_bytes` of it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, webhook_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # A provider's notification can be larger than any form (Amazon SNS: up to 256 KB).
        self.webhook_max_bytes = max(max_bytes, webhook_max_bytes or 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (
            self.webhook_max_bytes
            if str(scope.get("path", "")).startswith("/webhooks/")
            else self.max_bytes
        )
        declared = _content_length(scope)
        if declared is None:
            await _refuse(send, 400, b"Bad Request: Content-Length is not a number\n")
            return
        if declared > limit:
            await _refuse(send, 413, b"Content Too Large\n")
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, 413, b"Content Too Large\n")


def _content_length(scope: Scope) -> int | None:
    """The declared body length (0 when none is declared); None when it is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return 0


async def _refuse(send: Send, status: int, body: bytes) -> None:
    # "Connection: close": the rest of the body is never read, so the connection cannot be
    # used for another request.
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
