"""The maildir transport: messages written to a local maildir, one file each."""

import mailbox
from collections.abc import Sequence
from pathlib import Path

from diffusion.deliver.outcome import Outcome


class MaildirTransport:
    """Messages written to a local maildir: a fresh install works without a mail server."""

    concurrency = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self._box: mailbox.Maildir | None = None

    async def deliver(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        wire_ready: bool = False,
        relay: str | None = None,
    ) -> dict[str, Outcome]:
        try:
            if self._box is None:
                # Maildir(create=True) makes the three folders only when the maildir itself is
                # missing: an existing empty var/outbox would refuse every message.
                for folder in ("tmp", "new", "cur"):
                    (self.path / folder).mkdir(parents=True, exist_ok=True)
                self._box = mailbox.Maildir(self.path, create=False)
            key = self._box.add(data)
        except OSError as exc:
            # The folder's state, never a reader's: the row stays queued as it was.
            reason = f"cannot write to maildir {self.path}: {exc.strerror or exc}"
            return {recipient: Outcome("relay", reason) for recipient in recipients}
        return {recipient: Outcome("sent", f"maildir {key}") for recipient in recipients}

    async def close(self) -> None:
        self._box = None
