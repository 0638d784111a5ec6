"""What a transport says became of each recipient, and the interface every transport offers."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

# "relay": the SMTP session itself failed (connection, TLS, login, greeting, sender, 421,
# timeout): the relay's state, never a recipient's; the row goes back to the queue as it was.
Kind = Literal["sent", "temporary", "permanent", "relay"]


@dataclass(frozen=True)
class Outcome:
    """What became of one recipient of one message."""

    kind: Kind
    reply: str = ""
    relay: str = ""  # host:port of the relay that answered, when there are several

    @classmethod
    def from_code(cls, code: int, text: str) -> "Outcome":
        """4xx (and anything not 5xx) is worth retrying; 5xx is the server's final word."""
        return cls("permanent" if 500 <= code < 600 else "temporary", f"{code} {text}".strip())


class Transport(Protocol):
    """Hands one message to its recipients and says, per recipient, what became of it."""

    concurrency: int

    async def deliver(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        wire_ready: bool = False,
        relay: str | None = None,
    ) -> dict[str, Outcome]:
        """`wire_ready`: data has CRLF line ends and no line starting with "." (see _data).
        `relay`: a sender identity's own relay (its URL), the only one the message may take;
        a transport of one relay or none (a maildir) has no other to choose."""
        ...

    async def close(self) -> None: ...
